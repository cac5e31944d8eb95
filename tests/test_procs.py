"""External programs (backups_app/procs.py): their pipes hold a whole chunk, so a component's
thread that waits for the GIL between reads does not stall the program every 64 KiB."""

import fcntl
import subprocess

from backups_app.archive.storage import CHUNK_SIZE
from backups_app.procs import Program


def test_the_pipes_of_a_program_hold_a_whole_chunk():
    with Program(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as cat:
        sizes = [fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) for pipe in (cat.proc.stdin, cat.proc.stdout)]
        cat.proc.stdin.write(b"chunk")
        cat.proc.stdin.close()
        assert cat.proc.stdout.read() == b"chunk"
    assert sizes == [CHUNK_SIZE, CHUNK_SIZE]
