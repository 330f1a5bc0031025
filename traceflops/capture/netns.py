"""Private network namespaces: move this process (or one thread) into a new network namespace whose
only interface is its own loopback, so that a server started there is unreachable from the network."""
from __future__ import annotations

import os
import socket
from typing import Optional

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def _write(path: str, text: str) -> None:
    with open(path, "w") as stream:
        stream.write(text)


def loopback_up() -> None:
    """Raise the namespace's loopback interface (a new network namespace starts with it down)."""
    import fcntl
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, _SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))


def enter_private_network() -> Optional[str]:
    """Move this (single-threaded) process into a private network namespace with its loopback up;
    None on success, else why not. Tries a network namespace alone (root), then a user namespace
    with one (unprivileged users), mapping this user to root inside it so loopback can be raised."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError as exc:
        return f"no C library to call unshare ({exc})"
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWNET) != 0:
        first = os.strerror(ctypes.get_errno())
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            return (f"unshare(CLONE_NEWNET) failed: {first}; unshare(CLONE_NEWUSER|CLONE_NEWNET) failed: "
                    f"{os.strerror(ctypes.get_errno())}")
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
        except OSError as exc:
            return f"user namespace made but its id maps could not be written ({exc})"
    try:
        loopback_up()
    except OSError as exc:
        return f"private network namespace made but its loopback could not be raised ({exc})"
    return None


def enter_private_network_thread() -> Optional[str]:
    """Move the calling thread into a new network namespace with only its loopback up (root only:
    an unprivileged user needs a user namespace, which a multi-threaded process cannot enter);
    None on success, else why not."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            return f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}"
        loopback_up()
    except (OSError, AttributeError) as exc:  # no unshare (not Linux) or no permission
        return f"no private network namespace ({exc})"
    return None
