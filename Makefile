# The course's commands. `make book` and `make test` are the two the README promises;
# both set up .venv on first use (and again only when a requirement file changes).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JB     := $(BIN)/jupyter-book
CHROMIUM := /usr/bin/chromium
NOTEBOOK_DIRS := $(wildcard book exercises)
# `make test` executes every notebook once, under nbval (quick mode); the root conftest.py keeps
# the executed copies in EXECUTED, and the strict book build renders those (execution off) into
# TEST_BOOK, apart from the reader's full-mode book in _build/html.
EXECUTED  := _build/executed
TEST_BOOK := _build/test
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help setup book test unit notebooks book-strict browser lab bench student grade clean weights
.PHONY: postgresql db db-stop dashboard

help:
	@echo "make book   - set up .venv if needed, execute the notebooks, build the book into _build/html"
	@echo "make test   - unit tests, every notebook (quick mode, nbval), strict book build, browser tests"
	@echo "make lab    - JupyterLab on the course"
	@echo "make bench  - benchmarks against torchvision / pycocotools / PyTorch -> benchmarks/results/"
	@echo "make weights [NAME=ensembles_shapes] - retrain the stored long runs (seeded, CPU) into lecture_lib/weights/"
	@echo "make student - student copies of the exercises into _build/student"
	@echo "make grade EXERCISE=03_segmentation SUBMISSIONS=folder [JOBS=2] - grade a folder of submissions (resumable)"
	@echo "make db     - start a local PostgreSQL for the search across machines (prints its URL); make db-stop stops it"
	@echo "make dashboard [STORAGE=url] - optuna-dashboard on the chapter's study (http://127.0.0.1:8080/dashboard/)"

# A new .venv takes about 6.5 GB (torch alone 5.5 GB): say so up front rather than let pip fail
# half-way with "No space left on device".
VENV_MIN_GB ?= 7

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
		free=$$(df -Pk . | awk 'NR == 2 {print int($$4 / 1048576)}'); \
		if [ "$$free" -lt $(VENV_MIN_GB) ]; then \
			echo "make: a new $(VENV) needs about $(VENV_MIN_GB) GB of free disk, $(CURDIR) has $$free GB"; exit 1; \
		fi; \
	fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements.txt -e '.[test,book]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	@touch $@

# Debian's chromium for the browser tests and screenshots (Playwright drives it; it never
# downloads a browser of its own).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium is missing: run 'sudo apt-get install -y chromium' (needed by the browser tests)"; exit 1; \
	fi

# Debian's PostgreSQL server binaries (initdb, pg_ctl) for `make db` and the tests that start a
# cluster of their own (tests/test_postgres.py), installed as chromium is.
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
		else \
			echo "postgresql is missing: run 'sudo apt-get install -y postgresql' (needed by make db and its tests)"; exit 1; \
		fi; \
	fi

setup: $(STAMP)

# Pages execute two at a time, one thread each, into the build's cache (scripts/execute_book.py);
# the build then renders them from the cache (and would execute, with one thread too, any page
# missing there). One thread on every build: full mode's numbers do not depend on the jobs.
BOOK_JOBS ?= 2
book: setup
	$(BIN)/python scripts/execute_book.py --jobs $(BOOK_JOBS)
	LECTURE_THREADS=1 OMP_NUM_THREADS=1 $(JB) build --all -n --keep-going .
	@echo
	@echo "The book is in $(CURDIR)/_build/html - open file://$(CURDIR)/_build/html/index.html"

test: unit notebooks book-strict browser

unit: setup postgresql
	$(BIN)/python -m pytest tests -m "not browser" -n 2 --dist loadfile -q

notebooks: setup
	rm -rf $(EXECUTED)
	LECTURE_QUICK=1 LECTURE_EXECUTED_DIR=$(CURDIR)/$(EXECUTED) $(BIN)/python -m pytest --nbval-lax --nbval-current-env -n 2 --dist loadfile \
		-p no:cacheprovider -q $(NOTEBOOK_DIRS)
	$(BIN)/python scripts/glue.py check $(EXECUTED)

book-strict: setup
	$(BIN)/python scripts/build_test_book.py $(EXECUTED) $(TEST_BOOK)

browser: setup $(CHROMIUM)
	LECTURE_BOOK_HTML=$(TEST_BOOK)/src/_build/html $(BIN)/python -m pytest tests -m browser -q

lab: setup
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[lab]'
	$(BIN)/jupyter lab --notebook-dir=.

bench: setup
	$(BIN)/python benchmarks/run_all.py

# make weights [NAME=faster_rcnn_scenes] - run the long trainings once (seeded, on the CPU) and
# store state dict + JSON + manifest in lecture_lib/weights/ (issue 20); all of them without NAME.
NAME ?=
weights: setup
	nice -n 10 $(BIN)/python scripts/make_weights.py $(NAME)

EXERCISES   := $(wildcard exercises/[0-9]*.ipynb)
STUDENT_DIR ?= _build/student
GRADES_DIR  ?= _build/grades
JOBS        ?= 2

# Student copies of every exercise (solutions and hidden tests removed) into STUDENT_DIR.
student: setup
	for nb in $(EXERCISES); do $(BIN)/lecture-grade student "$$nb" $(STUDENT_DIR); done

# make grade EXERCISE=03_segmentation SUBMISSIONS=path/to/folder [JOBS=2] [GRADE_FLAGS="--timeout 600"]:
# JOBS submissions at once, any other lecture-grade option in GRADE_FLAGS; run it again after an
# interruption and it grades only what is missing
grade: setup
	@test -n "$(EXERCISE)" && test -n "$(SUBMISSIONS)" || { echo "usage: make grade EXERCISE=03_segmentation SUBMISSIONS=folder [JOBS=2] [GRADE_FLAGS=...]"; exit 1; }
	$(BIN)/lecture-grade grade exercises/$(EXERCISE).ipynb $(SUBMISSIONS) --out $(GRADES_DIR)/$(EXERCISE) --jobs $(JOBS) $(GRADE_FLAGS)

clean:
	rm -rf _build .pytest_cache

# The chapter's search across machines: a local PostgreSQL cluster under .cache/postgres (a free
# port, a generated password; as an unprivileged user when run as root). It prints the URL that
# `lecture-tune worker --storage URL --study NAME` takes on every machine.
db: setup postgresql
	@$(BIN)/lecture-tune db start

db-stop: setup
	@$(BIN)/lecture-tune db stop

# optuna-dashboard on the chapter's study (run first if missing), or on STORAGE=url
STORAGE ?= sqlite:///.cache/optuna/chapter.db
dashboard: setup
	$(BIN)/lecture-tune dashboard --storage '$(STORAGE)'
