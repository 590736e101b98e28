"""A seccomp filter for the python sandbox, in the spirit of Docker's default profile (classic BPF, no libseccomp).

bubblewrap installs a filter given as a compiled BPF program on a file descriptor (`--seccomp FD`); it
applies to the sandboxed command and everything it starts. The filter is an allow-list's inverse:
everything is allowed except the calls that let code in the sandbox reach past it:

- namespaces: `unshare`, `setns`, and `clone` with any CLONE_NEW* flag (a user namespace would give the
  code root over a new namespace and reopen the attack surface the uid drop closes);
- mounts: `mount`, `umount2`, `pivot_root` and the new mount API (`open_tree`, `move_mount`, `fsopen` …);
- the kernel keyring: `keyctl`, `add_key`, `request_key` (keys are not namespaced);
- `ptrace`, `process_vm_readv/writev`, `kcmp`; `bpf`; `perf_event_open`; `userfaultfd`; `io_uring_*`;
- kernel modules and kexec (`init_module`, `finit_module`, `delete_module`, `kexec_load`,
  `kexec_file_load`), `reboot`, `swapon/off`, `acct`, `quotactl`, `syslog`, clock setting, `iopl/ioperm`,
  `open_by_handle_at`.

They fail with EPERM; `clone3` fails with ENOSYS, as under Docker: its flags sit in a struct a filter
cannot read, and libc then falls back to `clone`, whose flags it can. Another architecture's calling
convention (32-bit x86 on x86_64, the x32 ABI) is refused outright.
"""

from __future__ import annotations

import os
import platform
import struct

# seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
_NR, _ARCH, _ARG0_LOW = 0, 4, 16  # little-endian: the low 32 bits of args[0] come first

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K

RET_ALLOW = 0x7FFF_0000
RET_KILL_PROCESS = 0x8000_0000
_RET_ERRNO = 0x0005_0000
EPERM, ENOSYS = 1, 38

CLONE_NEW_FLAGS = 0x7E02_0000
"""CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET."""
_X32_SYSCALL_BIT = 0x4000_0000

# Syscall numbers per architecture. Numbers from 424 on are the same everywhere.
_COMMON_NEW = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442,
}  # fmt: skip
_X86_64 = {
    "ptrace": 101, "syslog": 103, "pivot_root": 155, "adjtimex": 159, "acct": 163, "settimeofday": 164,
    "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172, "ioperm": 173,
    "init_module": 175, "delete_module": 176, "quotactl": 179, "clock_settime": 227, "kexec_load": 246,
    "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298,
    "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "kexec_file_load": 320, "bpf": 321,
    "userfaultfd": 323, **_COMMON_NEW,
}  # fmt: skip
_AARCH64 = {
    "umount2": 39, "mount": 40, "pivot_root": 41, "quotactl": 60, "acct": 89, "unshare": 97,
    "kexec_load": 104, "init_module": 105, "delete_module": 106, "clock_settime": 112, "syslog": 116,
    "ptrace": 117, "reboot": 142, "settimeofday": 170, "adjtimex": 171, "add_key": 217,
    "request_key": 218, "keyctl": 219, "swapon": 224, "swapoff": 225, "perf_event_open": 241,
    "open_by_handle_at": 265, "clock_adjtime": 266, "setns": 268, "process_vm_readv": 270,
    "process_vm_writev": 271, "kcmp": 272, "finit_module": 273, "bpf": 280, "userfaultfd": 282,
    "kexec_file_load": 294, **_COMMON_NEW,
}  # fmt: skip


class Arch:
    def __init__(self, audit_arch: int, blocked: dict[str, int], clone: int, clone3: int, x32: bool) -> None:
        self.audit_arch, self.blocked, self.clone, self.clone3, self.x32 = audit_arch, blocked, clone, clone3, x32


ARCHES = {
    "x86_64": Arch(0xC000_003E, _X86_64, clone=56, clone3=435, x32=True),
    "aarch64": Arch(0xC000_00B7, _AARCH64, clone=220, clone3=435, x32=False),
}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def build_filter(arch: Arch) -> bytes:
    """The BPF program (a sequence of 8-byte sock_filter instructions) for `arch`."""
    errno_perm = _RET_ERRNO | EPERM
    prog = [
        _insn(_LD_W_ABS, _ARCH),
        _insn(_JEQ, arch.audit_arch, jt=1),
        _insn(_RET, RET_KILL_PROCESS),  # another ABI's syscall numbers mean other calls: refuse them all
        _insn(_LD_W_ABS, _NR),
    ]
    if arch.x32:
        prog += [_insn(_JGE, _X32_SYSCALL_BIT, jf=1), _insn(_RET, errno_perm)]
    prog += [_insn(_JEQ, arch.clone3, jf=1), _insn(_RET, _RET_ERRNO | ENOSYS)]
    for nr in sorted(set(arch.blocked.values())):
        prog += [_insn(_JEQ, nr, jf=1), _insn(_RET, errno_perm)]
    prog += [
        _insn(_JEQ, arch.clone, jf=3),  # not clone: skip to ALLOW
        _insn(_LD_W_ABS, _ARG0_LOW),  # clone's flags
        _insn(_JSET, CLONE_NEW_FLAGS, jf=1),
        _insn(_RET, errno_perm),
        _insn(_RET, RET_ALLOW),
    ]
    return b"".join(prog)


def host_arch() -> Arch | None:
    return ARCHES.get(platform.machine())


_PROGRAM: bytes | None = None


def filter_fd() -> int | None:
    """A readable fd holding this host's filter, for `bwrap --seccomp FD` (the caller closes it);
    None on an architecture this module has no table for."""
    global _PROGRAM
    arch = host_arch()
    if arch is None:
        return None
    if _PROGRAM is None:
        _PROGRAM = build_filter(arch)
    read, write = os.pipe()
    try:
        os.write(write, _PROGRAM)  # a few hundred bytes: far below the pipe buffer, so this never blocks
    finally:
        os.close(write)
    return read
