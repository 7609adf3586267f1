#!/usr/bin/env python3
"""Plays systemd's socket activation for bench/drills.sh's crash-restart drill.

    socket_activate.py HOST:PORT PIDFILE RESTARTS -- COMMAND...

Binds HOST:PORT (backlog 1024) and keeps it for its whole life, as systemd does; runs COMMAND
with the socket as fd 3, LISTEN_FDS=1 and LISTEN_PID set to the command's pid; writes the
command's pid to PIDFILE; and when the command dies of a signal, starts it again at once
(Restart=on-failure, RestartSec=0), at most RESTARTS times. Exits with the command's status.
"""
import os
import socket
import sys

addr, pidfile, restarts = sys.argv[1], sys.argv[2], int(sys.argv[3])
cmd = sys.argv[sys.argv.index("--") + 1:]
host, port = addr.rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen(1024)
while True:
    pid = os.fork()
    if pid == 0:
        os.dup2(s.fileno(), 3)
        os.set_inheritable(3, True)
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
        os.execvpe(cmd[0], cmd, env)
    with open(pidfile, "w") as f:
        f.write(str(pid))
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and restarts > 0:
        restarts -= 1
        continue
    sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)
