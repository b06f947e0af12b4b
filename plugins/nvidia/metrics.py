"""Every series the NVIDIA plugin exports (documented in docs/gpu.md with NVML sources)."""

from __future__ import annotations

from agent.metrics import counter, gauge

GPU = ("gpu", "uuid", "model")

NVML_UP = gauge("inferwatch_gpu_nvml_up", "1 while NVML is initialised and answering.")
DRIVER_INFO = gauge("inferwatch_gpu_driver_info", "Driver and CUDA versions; always 1.",
                    "driver_version", "cuda_version")
GPU_UP = gauge("inferwatch_gpu_up", "1 if the GPU's last collection succeeded.", *GPU)
LAST_SUCCESS = gauge("inferwatch_gpu_last_success_timestamp_seconds",
                     "Unix time of the GPU's last successful read.", *GPU)
INFO = gauge("inferwatch_gpu_info", "Static GPU facts; always 1.", *GPU, "pci_bus_id")

UTILIZATION = gauge("inferwatch_gpu_utilization_ratio",
                    "Busy fraction over the driver's sample period, by engine.", *GPU, "engine")
MEMORY_USED = gauge("inferwatch_gpu_memory_used_bytes", "Framebuffer memory in use.", *GPU)
MEMORY_FREE = gauge("inferwatch_gpu_memory_free_bytes", "Framebuffer memory free.", *GPU)
MEMORY_TOTAL = gauge("inferwatch_gpu_memory_total_bytes", "Framebuffer memory.", *GPU)
BAR1_USED = gauge("inferwatch_gpu_bar1_used_bytes", "BAR1 memory in use.", *GPU)
BAR1_TOTAL = gauge("inferwatch_gpu_bar1_total_bytes", "BAR1 memory.", *GPU)
TEMPERATURE = gauge("inferwatch_gpu_temperature_celsius", "Temperature, by sensor.",
                    *GPU, "sensor")
TEMPERATURE_THRESHOLD = gauge("inferwatch_gpu_temperature_threshold_celsius",
                              "Temperature at which the GPU acts, by threshold.",
                              *GPU, "threshold")
POWER = gauge("inferwatch_gpu_power_watts", "Power draw.", *GPU)
POWER_LIMIT = gauge("inferwatch_gpu_power_limit_watts", "Enforced power limit.", *GPU)
ENERGY = counter("inferwatch_gpu_energy_joules_total", "Energy used since the driver loaded.",
                 *GPU)
CLOCK = gauge("inferwatch_gpu_clock_hertz", "Current clock, by domain.", *GPU, "clock")
CLOCK_MAX = gauge("inferwatch_gpu_clock_max_hertz", "Maximum clock, by domain.", *GPU, "clock")
PSTATE = gauge("inferwatch_gpu_performance_state", "Performance state: 0 fastest, 15 slowest.",
               *GPU)
FAN = gauge("inferwatch_gpu_fan_speed_ratio", "Intended fan speed.", *GPU)
THROTTLE = gauge("inferwatch_gpu_throttle_active", "1 while clocks are held down for this reason.",
                 *GPU, "reason")
THROTTLE_SECONDS = counter("inferwatch_gpu_throttle_seconds_total",
                           "Time observed with clocks held down, by reason.", *GPU, "reason")
PCIE_GEN = gauge("inferwatch_gpu_pcie_link_generation", "Current PCIe generation.", *GPU)
PCIE_GEN_MAX = gauge("inferwatch_gpu_pcie_link_generation_max", "Maximum PCIe generation.", *GPU)
PCIE_WIDTH = gauge("inferwatch_gpu_pcie_link_width", "Current PCIe lanes.", *GPU)
PCIE_WIDTH_MAX = gauge("inferwatch_gpu_pcie_link_width_max", "Maximum PCIe lanes.", *GPU)
PCIE_THROUGHPUT = gauge("inferwatch_gpu_pcie_throughput_bytes_per_second",
                        "PCIe throughput over the driver's 20 ms sample, by direction.",
                        *GPU, "direction")
PCIE_REPLAYS = counter("inferwatch_gpu_pcie_replays_total", "PCIe replay events.", *GPU)
ECC_MODE = gauge("inferwatch_gpu_ecc_enabled", "1 if ECC is on.", *GPU)
ECC_ERRORS = counter("inferwatch_gpu_ecc_errors_total",
                     "ECC errors, by error kind and counter scope (volatile resets on reload).",
                     *GPU, "error", "scope")
RETIRED_PAGES = gauge("inferwatch_gpu_retired_pages", "Retired framebuffer pages, by cause.",
                      *GPU, "cause")
RETIRED_PENDING = gauge("inferwatch_gpu_retired_pages_pending",
                        "1 if a page retirement waits for a reset.", *GPU)
REMAPPED_ROWS = gauge("inferwatch_gpu_remapped_rows", "Remapped memory rows, by kind.",
                      *GPU, "kind")
REMAP_PENDING = gauge("inferwatch_gpu_remapped_rows_pending",
                      "1 if a row remapping waits for a reset.", *GPU)
REMAP_FAILURE = gauge("inferwatch_gpu_remapped_rows_failure",
                      "1 if a row remapping failed: the GPU needs service.", *GPU)
NVLINK_UP = gauge("inferwatch_gpu_nvlink_up", "1 if the NVLink link is active.", *GPU, "link")
NVLINK_ERRORS = counter("inferwatch_gpu_nvlink_errors_total", "NVLink errors, by counter.",
                        *GPU, "link", "counter")
PERSISTENCE = gauge("inferwatch_gpu_persistence_mode", "1 if persistence mode is on.", *GPU)
COMPUTE_MODE = gauge("inferwatch_gpu_compute_mode",
                     "0 default, 1 exclusive thread, 2 prohibited, 3 exclusive process.", *GPU)
MIG_MODE = gauge("inferwatch_gpu_mig_enabled", "1 if MIG mode is on.", *GPU)
MIG_INSTANCES = gauge("inferwatch_gpu_mig_instances", "MIG devices present.", *GPU)
PROCESS_MEMORY = gauge("inferwatch_gpu_process_memory_used_bytes",
                       "GPU memory used by a compute process.", *GPU, "pid", "process")
XID_ERRORS = counter("inferwatch_gpu_xid_errors_total",
                     "XID errors reported by the driver, by code.", *GPU, "xid")
GPU_ERRORS = counter("inferwatch_gpu_errors_total",
                     "Collections of this GPU that failed, by NVML error (the others go on).",
                     *GPU, "error")
