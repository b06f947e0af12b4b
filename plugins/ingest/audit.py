"""Integration check for `inferwatch audit`: can the model server reach the ingest socket?

It connects as the auditing user, then judges the socket's owner, group and mode against
`[plugins.audit] model_server_user` (the user the model server runs as), when it is set.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.audit import AuditCheck, AuditContext, Status

THRESHOLD = "the socket accepts connections, and the model server's user may write it"
WHY = "the client SDK drops samples (counted, never blocking) while it cannot connect"


def socket_check(path: Path, audit: AuditContext) -> AuditCheck:
    try:
        info = path.stat()
    except OSError:
        return _check("warn", f"{path}: absent (the agent is not running?)",
                      "start the agent; the socket appears when ingest starts")
    if not stat.S_ISSOCK(info.st_mode):
        return _check("fail", f"{path}: not a socket", "remove the file; the agent recreates it")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(audit.timeout)
            sock.connect(str(path))
    except OSError as exc:
        if exc.errno != errno.EACCES:  # judged against model_server_user below
            return _check("fail", f"{path}: {exc.strerror} (a stale socket?)",
                          "restart the agent")
    return _access(path, info, audit.model_server_user)


def _access(path: Path, info: os.stat_result, user: str) -> AuditCheck:
    owner, group = _name(pwd.getpwuid, info.st_uid), _name(grp.getgrgid, info.st_gid)
    described = f"{path}: {owner}:{group} {stat.S_IMODE(info.st_mode):04o}"
    if not user:
        return _check("pass", f"{described}; connect ok", "")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return _check("fail", f"{described}; user {user!r} does not exist",
                      "correct [plugins.audit] model_server_user")
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    mode = info.st_mode
    allowed = bool(entry.pw_uid == 0 or (entry.pw_uid == info.st_uid and mode & stat.S_IWUSR)
                   or (info.st_gid in groups and mode & stat.S_IWGRP) or mode & stat.S_IWOTH)
    return _check("pass" if allowed else "fail",
                  f"{described}; {user} {'may' if allowed else 'may not'} write it",
                  "" if allowed else f"add {user} to group {group} (usermod -aG {group} "
                  f"{user}), or set [plugins.ingest] socket_mode to allow its group")


def _name(lookup: Callable[[int], tuple[Any, ...]], ident: int) -> str:
    try:
        return str(lookup(ident)[0])
    except KeyError:
        return str(ident)


def _check(status: Status, value: str, fix: str) -> AuditCheck:
    return AuditCheck("integration.ingest_socket", status, value, THRESHOLD, WHY, fix)
