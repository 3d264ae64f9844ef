"""Where a ROS message the project touches becomes arrays (and back). Plain functions over rosbags'
message objects or raw CDR bytes, no rclpy: the nodes, the recorder, the bag reader and the bag import
call them, so a message is read one way everywhere."""
