# Two entry points on a fresh Debian machine: `make run` and `make test`.
# Both install what they need (Debian packages when missing, a venv with pinned packages).
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# `make run` backs up the demo stack under var/demo, plus PostgreSQL when POSTGRES_* is set
# (only `run`: the tests configure their own sources and must not see these).
run: export UPLOADS_DIR ?= $(CURDIR)/var/demo/uploads
run: export SQLITE_PATHS ?= $(CURDIR)/var/demo/app.sqlite3

.PHONY: run test system-run system-test services clean

# `make run` needs only the runtime packages; `make test` adds the test tools.
$(VENV)/.installed-run: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

system-run:
	scripts/dev/ensure-system.sh run

system-test:
	scripts/dev/ensure-system.sh test

services: system-test
	scripts/dev/ensure-services.sh

run: system-run $(VENV)/.installed-run
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py demo_stack
	$(PY) manage.py ensure_admin --url http://$(HOST):$(PORT)/admin/
	$(PY) manage.py sweepruns
	$(PY) manage.py setup_schedules
	$(PY) manage.py setup_roles
	@echo "Starting the django-q2 worker and the web server on http://$(HOST):$(PORT)/admin/ (log in as shown above)"
	$(PY) manage.py qcluster & QPID=$$!; \
	trap 'kill $$QPID 2>/dev/null' EXIT INT TERM; \
	$(PY) manage.py runserver --noreload $(HOST):$(PORT)

test: services $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

clean:
	rm -rf $(VENV) var backups
