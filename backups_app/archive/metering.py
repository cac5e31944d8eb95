"""Counting the bytes that stream through the backup writer and reader, for a run's live progress:
every chunk is reported to a meter (``services/progress.Meter``; ``NO_METER`` when nobody watches)."""


class NoMeter:
    def add(self, nbytes):
        pass

    def add_items(self, count):
        pass


NO_METER = NoMeter()


class Metered:
    """A stream whose reads and writes report how many bytes passed to ``meter.add``."""

    def __init__(self, stream, meter):
        self._stream, self._meter = stream, meter

    def write(self, data):
        written = self._stream.write(data)
        self._meter.add(len(data))
        return written

    def read(self, *size):
        data = self._stream.read(*size)
        self._meter.add(len(data))
        return data

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
