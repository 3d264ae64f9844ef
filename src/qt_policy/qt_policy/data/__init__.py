"""Episode data: the in-memory episode, rosbag2 episode bags, the training shards (convert, shard_*) and the sampler (dataset, loader)."""
