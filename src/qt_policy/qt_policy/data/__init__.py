"""Episode data: the in-memory episode, rosbag2 episode bags, the training cache and the sampler."""
