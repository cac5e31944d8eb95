"""Side-by-side restores into folders (``uploads.directory``, ``config.directory``,
``sqlite.directory``, ``chroma.directory``) and path selections (``uploads.paths``): the checks
every folder store shares. A target folder is an absolute path that is no live place of any
configured source once links are resolved (not the live folder, not inside it, not a live file),
and is new or empty when the restore starts."""

import os
import posixpath

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
