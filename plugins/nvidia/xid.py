"""What the common XID codes mean for an operator (NVIDIA's XID catalogue, condensed)."""

from __future__ import annotations

from agent.model import Severity

# code: (what happened, what it usually means, severity)
XIDS: dict[int, tuple[str, Severity]] = {
    13: ("graphics engine exception: usually an application fault (bad kernel, illegal access)",
         Severity.WARNING),
    31: ("GPU memory page fault: usually an application accessing an illegal address",
         Severity.WARNING),
    43: ("GPU stopped processing: a user application hung or was killed mid-kernel",
         Severity.WARNING),
    45: ("preemptive cleanup after earlier errors: look at the XID before it", Severity.WARNING),
    48: ("double-bit ECC error: uncorrectable memory error, the process was killed",
         Severity.CRITICAL),
    61: ("internal micro-controller breakpoint/warning: driver or firmware issue",
         Severity.WARNING),
    62: ("internal micro-controller halt: reset the GPU", Severity.CRITICAL),
    63: ("ECC page retirement or row remapping recorded: reset the GPU to apply it",
         Severity.WARNING),
    64: ("ECC page retirement or row remapping failed: the GPU needs service",
         Severity.CRITICAL),
    68: ("video decoder exception", Severity.WARNING),
    69: ("graphics engine class error", Severity.WARNING),
    74: ("NVLink error: link or bridge fault", Severity.CRITICAL),
    79: ("GPU has fallen off the bus: power, thermal, PCIe or hardware fault", Severity.CRITICAL),
    92: ("high single-bit ECC error rate: memory degrading", Severity.WARNING),
    94: ("contained ECC error: the affected application was stopped, others run on",
         Severity.WARNING),
    95: ("uncontained ECC error: every process on the GPU is affected, reset the GPU",
         Severity.CRITICAL),
    119: ("GSP RPC timeout: firmware not responding, reset the GPU", Severity.CRITICAL),
    120: ("GSP error: firmware fault", Severity.CRITICAL),
    140: ("unrecovered ECC error", Severity.CRITICAL),
}


def describe(code: int) -> tuple[str, Severity]:
    return XIDS.get(code, (f"XID {code}: see NVIDIA's XID catalogue", Severity.WARNING))
