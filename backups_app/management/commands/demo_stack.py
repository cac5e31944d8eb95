"""Create the demo data stack (a SQLite database with sample rows and an uploads folder) that the
embedded default configuration backs up. Idempotent: existing data is left alone."""

import sqlite3
from contextlib import closing

from django.conf import settings

from backups_app.management.commands._base import ServiceCommand

DOCUMENTS = [
    ("Getting started", "How to back up and restore the whole RAG stack."),
    ("벡터 저장소", "Qdrant 컬렉션은 스냅샷으로 백업합니다."),
    ("Runbook", "Restore drills every month; measure the real RTO."),
]


class Command(ServiceCommand):
    help = "Create the demo SQLite database and uploads folder under var/demo (idempotent)."

    def handle(self, *args, **opts):
        demo = settings.DEMO_DIR
        (demo / "uploads" / "docs").mkdir(parents=True, exist_ok=True)
        db = demo / "app.sqlite3"
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("CREATE TABLE IF NOT EXISTS documents (id INTEGER PRIMARY KEY, title TEXT NOT NULL, "
                         "body TEXT NOT NULL)")
            conn.execute("CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, "
                         "document_id INTEGER NOT NULL REFERENCES documents(id), position INTEGER, text TEXT)")
            if not conn.execute("SELECT count(*) FROM documents").fetchone()[0]:
                for title, body in DOCUMENTS:
                    doc_id = conn.execute("INSERT INTO documents (title, body) VALUES (?, ?)", (title, body)).lastrowid
                    conn.executemany("INSERT INTO chunks (document_id, position, text) VALUES (?, ?, ?)",
                                     [(doc_id, i, word) for i, word in enumerate(body.split())])
        for i, (title, body) in enumerate(DOCUMENTS):
            path = demo / "uploads" / "docs" / f"{i + 1:02d}-{title.replace(' ', '_')}.txt"
            if not path.exists():
                path.write_text(f"{title}\n\n{body}\n", encoding="utf-8")
        self.stdout.write(f"demo stack ready in {demo}")
