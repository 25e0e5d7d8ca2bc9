"""The PCloud app SDK: verify invocations, talk to PCloud with the invocation token (CONTRACT §8)."""

from pcloud_sdk.client import PCloud, PCloudError
from pcloud_sdk.verify import InvalidInvocation, Invocation, Verifier

__all__ = ["InvalidInvocation", "Invocation", "PCloud", "PCloudError", "Verifier"]
__version__ = "0.1.0"
