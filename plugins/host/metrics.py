"""Every series the host plugin exports (documented in docs/metrics.md)."""

from __future__ import annotations

from agent.metrics import counter, gauge

CPU_SECONDS = counter("inferwatch_host_cpu_seconds_total",
                      "CPU time summed over all CPUs, by mode.", "mode")
CPUS = gauge("inferwatch_host_cpus", "Logical CPUs.")
LOAD1 = gauge("inferwatch_host_load1", "1-minute load average.")
LOAD5 = gauge("inferwatch_host_load5", "5-minute load average.")
LOAD15 = gauge("inferwatch_host_load15", "15-minute load average.")
CTX_SWITCHES = counter("inferwatch_host_context_switches_total", "Context switches.")
INTERRUPTS = counter("inferwatch_host_interrupts_total", "Interrupts serviced.")
PRESSURE = counter("inferwatch_host_pressure_stalled_seconds_total",
                   "Pressure stall time (PSI) where some tasks waited, by resource.", "resource")

MEM_TOTAL = gauge("inferwatch_host_memory_total_bytes", "Physical memory.")
MEM_AVAILABLE = gauge("inferwatch_host_memory_available_bytes",
                      "Memory available to new work without swapping.")
MEM_USED = gauge("inferwatch_host_memory_used_bytes", "Memory in use (total minus available).")
MEM_CACHED = gauge("inferwatch_host_memory_cached_bytes", "Page cache.")
MEM_BUFFERS = gauge("inferwatch_host_memory_buffers_bytes", "Kernel buffers.")
SWAP_TOTAL = gauge("inferwatch_host_swap_total_bytes", "Swap space.")
SWAP_USED = gauge("inferwatch_host_swap_used_bytes", "Swap in use.")
SWAP_IN = counter("inferwatch_host_swap_in_bytes_total", "Bytes swapped in.")
SWAP_OUT = counter("inferwatch_host_swap_out_bytes_total", "Bytes swapped out.")

_FS = ("mountpoint", "device", "fstype")
FS_SIZE = gauge("inferwatch_host_filesystem_size_bytes", "Filesystem size.", *_FS)
FS_FREE = gauge("inferwatch_host_filesystem_free_bytes", "Free bytes, root's reserve included.",
                *_FS)
FS_AVAIL = gauge("inferwatch_host_filesystem_avail_bytes", "Bytes available to non-root users.",
                 *_FS)
FS_FILES = gauge("inferwatch_host_filesystem_files", "Inodes.", *_FS)
FS_FILES_FREE = gauge("inferwatch_host_filesystem_files_free", "Free inodes.", *_FS)
FS_READONLY = gauge("inferwatch_host_filesystem_readonly", "1 if mounted read-only.", *_FS)

DISK_READ_BYTES = counter("inferwatch_host_disk_read_bytes_total", "Bytes read.", "device")
DISK_WRITTEN_BYTES = counter("inferwatch_host_disk_written_bytes_total", "Bytes written.",
                             "device")
DISK_READS = counter("inferwatch_host_disk_reads_completed_total", "Reads completed.", "device")
DISK_WRITES = counter("inferwatch_host_disk_writes_completed_total", "Writes completed.",
                      "device")
DISK_READ_TIME = counter("inferwatch_host_disk_read_time_seconds_total",
                         "Time spent reading.", "device")
DISK_WRITE_TIME = counter("inferwatch_host_disk_write_time_seconds_total",
                          "Time spent writing.", "device")
DISK_IO_TIME = counter("inferwatch_host_disk_io_time_seconds_total",
                       "Time the device had I/O in flight (utilisation when rated).", "device")

_IF = ("interface",)
NET_RX_BYTES = counter("inferwatch_host_network_receive_bytes_total", "Bytes received.", *_IF)
NET_TX_BYTES = counter("inferwatch_host_network_transmit_bytes_total", "Bytes sent.", *_IF)
NET_RX_PACKETS = counter("inferwatch_host_network_receive_packets_total", "Packets received.",
                         *_IF)
NET_TX_PACKETS = counter("inferwatch_host_network_transmit_packets_total", "Packets sent.", *_IF)
NET_RX_ERRS = counter("inferwatch_host_network_receive_errors_total", "Receive errors.", *_IF)
NET_TX_ERRS = counter("inferwatch_host_network_transmit_errors_total", "Transmit errors.", *_IF)
NET_RX_DROP = counter("inferwatch_host_network_receive_drop_total", "Inbound packets dropped.",
                      *_IF)
NET_TX_DROP = counter("inferwatch_host_network_transmit_drop_total",
                      "Outbound packets dropped.", *_IF)
NET_UP = gauge("inferwatch_host_network_up", "1 if the interface is up.", *_IF)
NET_SPEED = gauge("inferwatch_host_network_speed_bytes",
                  "Negotiated link speed in bytes per second, where the driver reports it.", *_IF)

FDS_ALLOCATED = gauge("inferwatch_host_file_descriptors_allocated",
                      "File handles allocated system-wide.")
FDS_MAXIMUM = gauge("inferwatch_host_file_descriptors_maximum",
                    "System-wide limit on file handles.")
BOOT_TIME = gauge("inferwatch_host_boot_time_seconds", "Unix time the host booted.")

_TEMP = ("chip", "sensor")
TEMPERATURE = gauge("inferwatch_host_temperature_celsius", "Sensor temperature.", *_TEMP)
TEMPERATURE_HIGH = gauge("inferwatch_host_temperature_high_celsius",
                         "Sensor's high threshold.", *_TEMP)
TEMPERATURE_CRIT = gauge("inferwatch_host_temperature_critical_celsius",
                         "Sensor's critical threshold.", *_TEMP)

_P = ("process",)
PROC_UP = gauge("inferwatch_host_process_up", "1 if at least one matching process runs.", *_P)
# Not `_count`: promtool refuses a gauge with a histogram's suffix.
PROC_COUNT = gauge("inferwatch_host_process_instances", "Matching processes.", *_P)
PROC_CPU = counter("inferwatch_host_process_cpu_seconds_total",
                   "CPU time of the matching processes, by mode.", "process", "mode")
PROC_RSS = gauge("inferwatch_host_process_resident_memory_bytes",
                 "Resident memory of the matching processes.", *_P)
PROC_THREADS = gauge("inferwatch_host_process_threads",
                     "Threads of the matching processes.", *_P)
PROC_FDS = gauge("inferwatch_host_process_open_fds",
                 "Open file descriptors of the matching processes.", *_P)
