"""Redis restores into another database index, or of some keys only (mixed into RedisComponent;
docs/side-by-side.md).

- ``redis.db=N``: one backed-up db (the only one, or ``redis.source_db=M``) is loaded into db index
  N of the same server, which must be empty and is not a live db (not in REDIS_DBS, not the db the
  data came from); the live dbs are not touched. A failure empties N again.
- ``redis.keys=PATTERN``: only the keys matching the glob (Redis's syntax: ``*``, ``?``, ``[abc]``,
  ``[^a]``, ``\\`` escapes), into N or into the live dbs; there they replace the keys of the same
  name and every other key stays (as in merge mode).
- promotion (services/promote.py): ``SWAPDB`` of the restored index and the db it came from (one
  atomic command), undone by the same; the replaced data waits in the other index until dropped.
"""

import re

import redis

from backups_app.errors import InvalidOption, Unchanged


def db_index(value):
    number = int(value)
    if number < 0:
        raise ValueError(f"expected a database index (0 or more), got {value!r}")
    return number


def glob_matcher(pattern):
    """A predicate on key bytes for a Redis glob (None for no pattern)."""
    if not pattern:
        return None
    out, i, text = [], 0, pattern
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(re.escape(text[i + 1]))
            i += 2
            continue
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = text.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = text[i + 1:end]
                negate = body.startswith("^")
                body = body[1:] if negate else body
                out.append(f"[{'^' if negate else ''}{body.replace(chr(92), chr(92) * 2)}]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    regex = re.compile("".join(out).encode("utf-8", "surrogateescape"), re.S)
    return lambda key: regex.fullmatch(key) is not None


class SideBySide:
    target_options = {
        "db": "restore into this empty database index of the same server (the live dbs are not touched)",
        "source_db": "with db: which backed-up db index to restore (when the backup holds several)",
        "keys": "only the keys matching this pattern (Redis glob, e.g. session:*)",
    }

    @staticmethod
    def is_partial(options):
        return options["db"] is not None or bool(options["keys"])

    def check_restore_options(self, options):
        if options["source_db"] is not None and options["db"] is None:
            raise InvalidOption(f"{self.name}.source_db picks the backed-up db to restore into {self.name}.db; give "
                                f"{self.name}.db=N too (a live restore puts every db back where it was).")
        if options["db"] is not None and options["db"] in self.config["dbs"]:
            raise InvalidOption(f"{self.name}.db={options['db']} is a live database (REDIS_DBS); choose an empty "
                                "index of its own.")

    def targets_live(self, options):
        return options["db"] is None

    def probe_target(self, options, facts):
        return {"dbs": [options["db"]]} if options["db"] is not None else None

    def describe_target(self, options):
        keys = f"keys matching {options['keys']}" if options["keys"] else "every key"
        if options["db"] is not None:
            source = "" if options["source_db"] is None else f" of db {options['source_db']}"
            return f"{keys}{source} into database index {options['db']}; the live dbs are not touched"
        if options["keys"]:
            return f"only {keys} into the live dbs (they replace keys of the same name; other keys stay)"
        return None

    def _source_db(self, facts, options):
        """(the backed-up db that goes into redis.db, or None; the problem, or None)."""
        in_backup = sorted(int(db[2:]) for db in facts.get("counts", {}))
        wanted = options["source_db"]
        if wanted is None and len(in_backup) == 1:
            return in_backup[0], None
        if wanted is None:
            return None, (f"the backup holds db {', '.join(map(str, in_backup)) or '(none)'}; {self.name}.db restores "
                          f"one at a time: say which with {self.name}.source_db=N")
        if wanted not in in_backup:
            return None, f"the backup holds no db {wanted} (it holds {', '.join(map(str, in_backup)) or 'none'})"
        return wanted, None

    def side_problems(self, client, reader, options):
        """Why the restore into ``redis.db`` cannot run as it is now ([] when it can, or when the
        restore goes into the live dbs)."""
        target = options["db"]
        if target is None:
            return []
        source, problem = self._source_db(reader.facts_of(self.name), options)
        if problem:
            return [problem]
        if target == source:
            return [f"{self.name}.db={target} is where the backup's db {source} lives: that is the live restore "
                    f"(leave out {self.name}.db), or choose another index"]
        held = self._held(client)[0]
        if target in held:
            return [f"database index {target} holds {held[target]} keys; choose an empty index (nothing there is "
                    "replaced)"]
        if not self._selectable(target):
            return [f"database index {target} does not exist on this server (CONFIG SET databases, or a lower index)"]
        return []

    def restore_part(self, reader, dump, options, log):
        with self._connected() as client:
            problems = self.side_problems(client, reader, options)
        if problems:
            raise Unchanged(f"{self.name}: {'; '.join(problems)}; nothing was changed.")
        target, match = options["db"], glob_matcher(options["keys"])
        if target is None:
            counts, skipped = self._load(reader, dump, match=match)
            log(f"{self.name}: restored {sum(counts.values())} keys matching {options['keys']} into the live dbs; "
                f"other keys were left as they are ({sum(skipped.values())} had expired since the backup)")
            return counts
        source, _ = self._source_db(reader.facts_of(self.name), options)
        try:
            counts, skipped = self._load(reader, dump, into={source: target}, only={source}, match=match)
        except Exception as exc:
            self._empty([target], log)
            raise Unchanged(f"{self.name}: loading into database index {target} failed ({exc}); it was emptied "
                            "again and the live dbs were not touched") from None
        log(f"{self.name}: restored {counts.get(f'db{source}', 0)} keys of db {source} into database index {target}; "
            f"the live dbs were not touched ({skipped.get(f'db{source}', 0)} had expired since the backup)")
        return counts

    def promote(self, options, facts, tag, log):
        if options["keys"]:
            raise Unchanged(f"{self.name}: this restore holds only the keys matching {options['keys']}; promoting it "
                            "would replace the whole db with them. Copy them over instead (a merge restore).")
        source, problem = self._source_db(facts, options)
        if problem:
            raise Unchanged(f"{self.name}: {problem}")
        self._swapdb(source, options["db"])
        log(f"{self.name}: db {options['db']} (the restored data) is now db {source} (SWAPDB); the replaced data is in "
            f"db {options['db']}")
        return {"db": source, "with": options["db"]}

    def undo_promotion(self, record, log):
        self._swapdb(record["db"], record["with"])
        log(f"{self.name}: db {record['db']} is back to what it was (SWAPDB); the promoted data is in db "
            f"{record['with']} again")

    def drop_replaced(self, record, log):
        self._empty([record["with"]])
        log(f"{self.name}: emptied db {record['with']}, which held the data the promotion replaced")

    def _swapdb(self, db, other):
        with self._connected() as client:
            try:
                client.swapdb(db, other)
            except redis.ResponseError as exc:
                raise Unchanged(f"{self.name}: SWAPDB {db} {other} was refused ({exc}); nothing was swapped.") from None
