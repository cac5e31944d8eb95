from backups_app.management.commands._base import ServiceCommand
from backups_app.services import promote


class Command(ServiceCommand):
    help = ("Promote a completed side-by-side restore: swap what it restored in for the live stores (PostgreSQL "
            "database rename, Qdrant alias switch, Redis SWAPDB, folder rename), keeping the replaced data until "
            "--drop-old; --undo swaps back while the replaced data exists. Audited and logged on the restore.")

    def add_arguments(self, parser):
        parser.add_argument("restore_id", help="restore_YYYYMMDD_HHMMSS")
        parser.add_argument("--drop-old", action="store_true", help="Remove the replaced data (then no undo).")
        parser.add_argument("--undo", action="store_true", help="Swap the replaced data back in.")

    def handle(self, *args, **opts):
        for line in promote.promote(opts["restore_id"], drop_old=opts["drop_old"], undo=opts["undo"]):
            self.stdout.write(line)
