"""Side-by-side restores into folders (``uploads.directory``, ``config.directory``,
``sqlite.directory``, ``chroma.directory``) and path selections (``uploads.paths``): the checks
every folder store shares. A target folder is an absolute path that is no live place of any
configured source once links are resolved (not the live folder, not inside it, not a live file),
and is new or empty when the restore starts.

Promotion (services/promote.py) swaps such a folder or file in for the live one by rename
(``swap_place``), keeping the live one beside it as ``<live>.replaced-<restore id>`` until
``drop_place``; ``swap_back`` undoes it."""

import errno
import os
import posixpath
import shutil

from backups_app.archive.safetar import is_inside
from backups_app.errors import InvalidOption, Unchanged
from backups_app.parsing import comma_list


def side_folder(component, key, path):
    """The real path of folder ``path`` given as restore option ``<component>.<key>`` ("" when
    not given). Refused (InvalidOption) when it is relative, or is or lies inside a place that a
    configured source holds live, through any link."""
    if not path:
        return ""
    option = f"{component.name}.{key}={path}"
    if not os.path.isabs(path):
        raise InvalidOption(f"{option}: give an absolute path (the web server and the worker run in "
                            "different folders).")
    target = os.path.realpath(path)
    refuse_live(component, option, target)
    return target


def refuse_live(component, option, target):
    """InvalidOption when real path ``target`` is, or lies inside, a live place of any source."""
    from backups_app import components  # the registry imports the store modules

    for source in components.all_components().values():
        for live in source.live_places():
            live = os.path.realpath(live)
            if is_inside(live, target):
                where = "is" if live == target else "lies inside"
                mine = "this source's" if source.name == component.name else f"source {source.name!r}'s"
                raise InvalidOption(f"{option}: {target} {where} {live}, {mine} live data; a side-by-side restore "
                                    "goes into a folder of its own (the live data is restored without this option).")


def not_empty(folder):
    """Why ``folder`` cannot take a side-by-side restore (it is a file, or a folder with
    something in it), or None when it is missing or empty."""
    if not os.path.lexists(folder):
        return None
    if not os.path.isdir(folder) or os.path.islink(folder):
        return f"{folder} exists and is not a folder"
    if os.listdir(folder):
        return f"{folder} is not empty; choose a new or empty folder (nothing there is replaced)"
    return None


def require_empty(component, folder):
    """At restore time: Unchanged when ``folder`` took something since the plan."""
    problem = not_empty(folder)
    if problem:
        raise Unchanged(f"{component.name}: {problem}.")


def relative_paths(value):
    """``uploads.paths``: relative paths inside the folder (``docs/a.txt,images``), normalised;
    absolute ones and ``..`` refused."""
    paths = []
    for item in comma_list(value):
        path = posixpath.normpath(item.rstrip("/"))
        if item.startswith("/") or "\\" in item or "\x00" in item or path in (".", "..") or path.startswith("../"):
            raise ValueError(f"{item!r} is not a path inside the folder (relative, without '..')")
        paths.append(path)
    return list(dict.fromkeys(paths))


def selected(paths):
    """A predicate on archive member names: the member is one of ``paths`` or lies under one."""
    if not paths:
        return None
    return lambda name: any(name == p or name.startswith(p + "/") for p in paths)


def swap_place(live, replacement, tag):
    """Rename ``live`` to ``<live>.replaced-<tag>`` and ``replacement`` to ``live`` (two renames on
    one file system). Returns {"live", "old" (None when there was no live one), "from"}; Unchanged
    when it cannot (nothing moved)."""
    old = f"{live}.replaced-{tag}"
    if not os.path.lexists(replacement):
        raise Unchanged(f"{replacement} is gone; there is nothing to swap in.")
    if os.path.lexists(old):
        raise Unchanged(f"{old} exists; was this restore promoted before? Nothing was swapped.")
    existed = os.path.lexists(live)
    try:
        if existed:
            os.rename(live, old)
        try:
            os.rename(replacement, live)
        except OSError:
            if existed:
                os.rename(old, live)
            raise
    except OSError as exc:
        other = "; it is on another file system, so restore beside the live one" if exc.errno == errno.EXDEV else ""
        raise Unchanged(f"cannot move {replacement} to {live} ({exc.strerror}{other}); nothing was swapped.") from None
    return {"live": live, "old": old if existed else None, "from": replacement}


def swap_back(record):
    """Undo ``swap_place``: the promoted data back where it came from, the replaced data back live."""
    live, old, came = record["live"], record["old"], record["from"]
    if os.path.lexists(came):
        raise Unchanged(f"{came} exists again; move it away to undo. Nothing was swapped.")
    if old and not os.path.lexists(old):
        raise Unchanged(f"{old}, the data the promotion replaced, is gone (dropped); it cannot be undone.")
    try:
        os.rename(live, came)
        if old:
            os.rename(old, live)
    except OSError as exc:
        raise Unchanged(f"cannot move {live} back to {came} ({exc.strerror}).") from None


def drop_place(record):
    """Remove the data ``swap_place`` replaced."""
    old = record["old"]
    if old and os.path.isdir(old) and not os.path.islink(old):
        shutil.rmtree(old)
    elif old and os.path.lexists(old):
        os.unlink(old)


class DirectoryTarget:
    """A store that ``<name>.directory`` restores into a folder of its own instead of the live
    place (a mixin before Component); the store says what goes there (``describe_directory``)."""

    def targets_live(self, options):
        return not options["directory"]

    def describe_target(self, options):
        if not options["directory"]:
            return None
        return self.describe_directory(side_folder(self, "directory", options["directory"]))


class FolderPromotion:
    """Promotion for the stores whose side-by-side target is a folder or files: each swapped in by
    rename (a mixin before Component)."""

    def promote_swaps(self, pairs, tag, log):
        """Swap each (live, replacement) of ``pairs``; a failure swaps back those done."""
        done = []
        try:
            for live, replacement in pairs:
                done.append(swap_place(os.path.abspath(live), replacement, tag))
                replaced = f"; the replaced one is kept as {done[-1]['old']}" if done[-1]["old"] else ""
                log(f"{self.name}: {replacement} is now {live}{replaced}")
        except Unchanged as exc:
            for swap in reversed(done):
                swap_back(swap)
            raise Unchanged(f"{self.name}: {exc}") from None
        return {"swaps": done}

    def undo_promotion(self, record, log):
        for swap in reversed(record["swaps"]):
            try:
                swap_back(swap)
            except Unchanged as exc:
                raise Unchanged(f"{self.name}: {exc}") from None
            log(f"{self.name}: {swap['live']} is back to what it was; the promoted data is {swap['from']} again")

    def drop_replaced(self, record, log):
        for swap in record["swaps"]:
            drop_place(swap)
            if swap["old"]:
                log(f"{self.name}: removed {swap['old']}, the data the promotion replaced")
