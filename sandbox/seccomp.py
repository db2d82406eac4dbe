"""The seccomp filter every local sandbox runs under, handed to bubblewrap (``--seccomp FD``).

Namespaces already keep a sandbox away from the host's processes, but not from its own:
without this, a model could ``ptrace`` its sandbox's init (bwrap's pid 1) and stop it, and
the replica would look alive while it answered nothing. The filter lets every system call
through except the ones that reach into another process's memory or execution, which fail
with ``EPERM`` (an error the program can handle, not a kill):

- ``ptrace`` (PTRACE_ATTACH, PTRACE_SEIZE, PTRACE_TRACEME and every other request),
- ``process_vm_readv`` / ``process_vm_writev``.

It is compiled with libseccomp (through ``pyseccomp``, a ctypes binding), not written as
BPF by hand: libseccomp resolves syscall numbers per architecture and emits the checks on
the architecture field that hand-written filters get wrong. On x86-64 the 32-bit (x86) and
x32 system call tables get the same rules, so ``int 0x80`` is no way around them; a call
from any other architecture kills the process (libseccomp's default for a foreign arch).

bubblewrap reads the program from a file descriptor and installs it just before it runs the
sandbox's command, after setting ``no_new_privs``.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile

import pyseccomp as seccomp

DENIED = ("ptrace", "process_vm_readv", "process_vm_writev")


@functools.cache
def program() -> bytes:
    """The filter as a classic BPF program (what ``bwrap --seccomp`` reads)."""
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    if seccomp.system_arch() == seccomp.Arch.X86_64:
        for arch in (seccomp.Arch.X86, seccomp.Arch.X32):
            rules.add_arch(arch)
    for name in DENIED:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()


def open_program() -> int:
    """A file descriptor holding the program, at offset 0 and inheritable (bwrap reads it
    once); the caller passes it to the child and closes it after the child has started."""
    fd = os.memfd_create("podium-seccomp", 0)
    os.write(fd, program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
