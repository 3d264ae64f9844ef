"""Running the product's nodes as a ROS graph from Python: launch files read as `ros2 launch` reads
them, node processes started and ended by pid, episodes driven through the graph, and the shared-memory
segments Fast DDS leaves behind. Used by the evaluation, the flywheel, the demo and the tests."""
