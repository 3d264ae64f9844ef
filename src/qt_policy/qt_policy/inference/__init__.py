"""Acting with a trained policy: one interface (`act`: numpy observation batch -> greedy action) over
two backends, torch (the checkpoint, decoded by the fused greedy decoder) and ONNX Runtime (an
exported graph; needs neither torch nor the training code). The node and the evaluation use it."""
from .backends import BACKENDS, as_policy, load_policy
from .export_files import PolicyOutput

__all__ = ["BACKENDS", "PolicyOutput", "as_policy", "load_policy"]
