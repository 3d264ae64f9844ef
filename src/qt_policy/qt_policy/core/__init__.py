"""Q-Transformer core: plain PyTorch, no ROS. Discretization, model, decoding, losses, data, training."""
