# pecfs - save and load PyTorch tensors as safetensors files on a pecfs mount through libpecgpu (only
# chunks the mount does not already hold are copied and written), and the trainer's side of a run's
# Partial Experts Checkpoint files. See gpu/python/README.md.
from ._lib import cuda_available, version as library_version
from .load import load_file, load_metadata
from .run import Plan, TokenReportRejected, plan, report_tokens, resumed, token_report
from .save import Context, SaveHandle, save_async, save_file

__all__ = ["Context", "Plan", "SaveHandle", "TokenReportRejected", "cuda_available", "library_version",
           "load_file", "load_metadata", "plan", "report_tokens", "resumed", "save_async", "save_file",
           "token_report"]
