from backups_app.management.commands._base import ServiceCommand
from backups_app.models import OperationLock
from backups_app.services import locks


class Command(ServiceCommand):
    help = ("List held locks and their holder's state; --break NAME removes a stale one (its holder is not an "
            "active run), audited. A live lock is refused.")

    def add_arguments(self, parser):
        parser.add_argument("--break", dest="name", metavar="NAME", help="Break the stale lock NAME.")

    def handle(self, *args, **opts):
        if opts["name"]:
            state = locks.break_lock(opts["name"])
            self.stdout.write(f"lock {opts['name']} broken; its holder {state}")
            return
        for lock in OperationLock.objects.all():
            self.stdout.write(f"{lock.name:10} {lock.acquired_at:%Y-%m-%d %H:%M:%S} UTC  {locks.holder_state(lock)[1]}")
