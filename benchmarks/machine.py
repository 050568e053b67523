"""The machine a benchmark ran on, for its results JSON (claims hold on the CPUs measured)."""

import os
import platform

# The flags that decide which configuration is fastest on a CPU.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_info():
    """{"model", "cores", "flags": the SPEED_FLAGS present, "machine"} from /proc/cpuinfo."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "cores": os.cpu_count(),
            "flags": [f for f in SPEED_FLAGS if f in flags], "machine": platform.machine()}
