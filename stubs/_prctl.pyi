# python-prctl's C module, the part pyrunc uses (the package ships no type information).
PR_SET_CHILD_SUBREAPER: int
PR_SET_DUMPABLE: int
PR_SET_KEEPCAPS: int
PR_SET_NO_NEW_PRIVS: int
PR_SET_PDEATHSIG: int

def prctl(option: int, arg: int = ..., arg2: int = ..., /) -> int: ...
def set_caps(effective: list[int], permitted: list[int], inheritable: list[int],
             effective_clear: list[int], permitted_clear: list[int],
             inheritable_clear: list[int], /) -> None: ...
