"""External programs (backups_app/procs.py): their output pipe holds a whole chunk, so a
component's thread that waits for the GIL between reads does not stall the program every 64 KiB."""

import fcntl
import os
import subprocess

from backups_app.archive.storage import CHUNK_SIZE
from backups_app.procs import Program


def test_the_output_pipe_of_a_program_holds_a_whole_chunk():
    with Program(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as cat:
        sizes = [fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) for pipe in (cat.proc.stdin, cat.proc.stdout)]
        cat.proc.stdin.write(b"chunk")
        cat.proc.stdin.close()
        assert cat.proc.stdout.read() == b"chunk"
    # The input stays small: pg_restore --list, which reads only an archive's head, is fed little more.
    read_end, write_end = os.pipe()
    default = fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ)
    os.close(read_end)
    os.close(write_end)
    assert sizes == [default, CHUNK_SIZE] and default < CHUNK_SIZE
