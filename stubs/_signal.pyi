# CPython's signal module core (Modules/signalmodule.c), which `signal` re-exports after
# wrapping the numbers in enums: only what pyrunc's hot commands use.
SIGKILL: int
SIGTERM: int

def valid_signals() -> set[int]: ...
def pidfd_send_signal(pidfd: int, sig: int, siginfo: None = ..., flags: int = ..., /) -> None: ...
