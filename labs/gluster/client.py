#!/usr/bin/env python3
"""GlusterFS bench client of the subcast lab (`labs::gluster`).

Writes N objects into a GlusterFS volume, timing each durable write
(create + write + fsync + close) on its own, then reads them back to verify.
Two ways in:

  client.py fuse  --dir MOUNTPOINT ...              a FUSE mount (plain syscalls)
  client.py fuse  --dir DIR --local ...             a local directory (the baseline)
  client.py gfapi --volume V --server ADDR ...      libgfapi (libgfapi.so.0, ctypes)

The lab runs it inside the client host's network namespace and private mount
namespace, and drives it with one line per phase, so that process start,
connection setup and verification stay outside what is timed and counted:

  stdout {"phase": "ready"}                       connected (gfapi: glfs_init done)
  stdin  go
  stdout {"phase": "written", "put_ns": [...]}    one duration per object
  stdin  verify
  stdout {"phase": "verified", "ok": bool, "bad": [...]}

Payloads are random (os.urandom, made before each object's timer starts); a
BLAKE2b digest of each is kept for the verification. Errors go to stderr with
exit status 1. The gfapi mode ends with os._exit without glfs_fini (which takes
~9 s and changes nothing for the measurement).
"""

import argparse
import ctypes
import hashlib
import json
import os
import sys
import time


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def expect(word):
    line = sys.stdin.readline()
    if line.strip() != word:
        raise SystemExit(f"expected '{word}' on stdin, got {line!r}")


class Fuse:
    """Plain files under a mount point."""

    def __init__(self, args):
        self.dir = args.dir
        if not args.local and not os.path.ismount(self.dir):
            raise SystemExit(f"{self.dir} is not a mount point in this mount namespace")

    def put(self, name, data, chunk):
        fd = os.open(os.path.join(self.dir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        view = memoryview(data)
        off = 0
        while off < len(view):
            off += os.write(fd, view[off:off + chunk])
        os.fsync(fd)
        os.close(fd)

    def get(self, name, size):
        with open(os.path.join(self.dir, name), "rb") as f:
            return f.read(size + 1)

    def exit(self, code):
        sys.exit(code)


class Gfapi:
    """libgfapi through ctypes (GlusterFS >= 6 symbol versions)."""

    def __init__(self, args):
        try:
            g = ctypes.CDLL("libgfapi.so.0", use_errno=True)
        except OSError as e:
            raise SystemExit(f"cannot load libgfapi.so.0 ({e}): apt-get install glusterfs-client")
        vp, cp, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
        sig = {
            "glfs_new": (vp, [cp]),
            "glfs_set_volfile_server": (ctypes.c_int, [vp, cp, cp, ctypes.c_int]),
            "glfs_set_logging": (ctypes.c_int, [vp, cp, ctypes.c_int]),
            "glfs_init": (ctypes.c_int, [vp]),
            "glfs_creat": (vp, [vp, cp, ctypes.c_int, ctypes.c_uint]),
            "glfs_open": (vp, [vp, cp, ctypes.c_int]),
            "glfs_write": (ctypes.c_ssize_t, [vp, vp, sz, ctypes.c_int]),
            "glfs_read": (ctypes.c_ssize_t, [vp, vp, sz, ctypes.c_int]),
            "glfs_fsync": (ctypes.c_int, [vp, vp, vp]),
            "glfs_close": (ctypes.c_int, [vp]),
        }
        for name, (res, argt) in sig.items():
            f = getattr(g, name)
            f.restype, f.argtypes = res, argt
        self.g = g
        self.fs = g.glfs_new(args.volume.encode())
        if not self.fs:
            self.fail("glfs_new")
        if g.glfs_set_volfile_server(self.fs, b"tcp", args.server.encode(), args.port) != 0:
            self.fail("glfs_set_volfile_server")
        if g.glfs_set_logging(self.fs, args.log.encode(), 7) != 0:
            self.fail("glfs_set_logging")
        if g.glfs_init(self.fs) != 0:
            self.fail(f"glfs_init (see {args.log})")

    def fail(self, what):
        err = ctypes.get_errno()
        raise SystemExit(f"{what} failed: {os.strerror(err)} (errno {err})")

    def put(self, name, data, chunk):
        g = self.g
        # `data` is a ctypes array (made before the timer starts): no copy here.
        fd = g.glfs_creat(self.fs, ("/" + name).encode(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        if not fd:
            self.fail(f"glfs_creat /{name}")
        base = ctypes.addressof(data)
        off = 0
        while off < len(data):
            n = g.glfs_write(fd, base + off, min(chunk, len(data) - off), 0)
            if n <= 0:
                self.fail(f"glfs_write /{name}")
            off += n
        if g.glfs_fsync(fd, None, None) != 0:
            self.fail(f"glfs_fsync /{name}")
        if g.glfs_close(fd) != 0:
            self.fail(f"glfs_close /{name}")

    def get(self, name, size):
        g = self.g
        fd = g.glfs_open(self.fs, ("/" + name).encode(), os.O_RDONLY)
        if not fd:
            self.fail(f"glfs_open /{name}")
        buf = ctypes.create_string_buffer(size + 1)
        got = 0
        while got <= size:
            n = g.glfs_read(fd, ctypes.addressof(buf) + got, size + 1 - got, 0)
            if n < 0:
                self.fail(f"glfs_read /{name}")
            if n == 0:
                break
            got += n
        g.glfs_close(fd)
        return buf.raw[:got]

    def exit(self, code):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    fuse = sub.add_parser("fuse")
    fuse.add_argument("--dir", required=True)
    fuse.add_argument("--local", action="store_true", help="DIR need not be a mount point")
    gf = sub.add_parser("gfapi")
    gf.add_argument("--volume", required=True)
    gf.add_argument("--server", required=True, help="volfile server (name or address)")
    gf.add_argument("--port", type=int, default=24007)
    gf.add_argument("--log", default="/dev/null")
    for s in (fuse, gf):
        s.add_argument("--object-size", type=int, required=True)
        s.add_argument("--puts", type=int, required=True)
        s.add_argument("--name-prefix", default="obj")
        s.add_argument("--chunk", type=int, default=1 << 20, help="bytes per write call")
    args = p.parse_args()

    client = Fuse(args) if args.mode == "fuse" else Gfapi(args)
    say({"phase": "ready", "pid": os.getpid()})
    expect("go")

    digests, put_ns = [], []
    for i in range(args.puts):
        name = f"{args.name_prefix}-{i}"
        data = os.urandom(args.object_size)
        if args.mode == "gfapi":
            data = (ctypes.c_char * len(data)).from_buffer_copy(data)
        t0 = time.perf_counter_ns()
        client.put(name, data, args.chunk)
        put_ns.append(time.perf_counter_ns() - t0)
        digests.append(hashlib.blake2b(bytes(data)).digest())
    say({"phase": "written", "put_ns": put_ns})
    expect("verify")

    bad = []
    for i, d in enumerate(digests):
        name = f"{args.name_prefix}-{i}"
        back = client.get(name, args.object_size)
        if len(back) != args.object_size or hashlib.blake2b(back).digest() != d:
            bad.append({"name": name, "len": len(back)})
    say({"phase": "verified", "ok": not bad, "bad": bad})
    client.exit(0)


if __name__ == "__main__":
    try:
        main()
    except SystemExit as e:
        if isinstance(e.code, str):
            sys.stderr.write(e.code + "\n")
            sys.stderr.flush()
            os._exit(1)
        raise
