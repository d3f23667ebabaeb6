# stage — PGXS build.  `make demo` and `make test` are the two entry points;
# see README.md.

EXTENSION   = stage stage_warehouse
MODULE_big  = stage
OBJS        = $(patsubst %.c,%.o,$(wildcard src/*.c))
# The install script of the current version is built from the pieces in
# sql/stage--0.3/, in name order: one piece per area, so each area's objects
# and grants sit together.  Released scripts (sql/stage--0.1.sql,
# sql/stage--0.2.sql, sql/stage--0.1--0.2.sql) are never edited;
# stage--A--B.sql update an installation from A to B.
DATA_built  = stage--0.3.sql stage--0.2--0.3.sql
DATA        = sql/stage--0.1.sql sql/stage--0.1.control sql/stage--0.2.sql sql/stage--0.1--0.2.sql \
              sql/stage_warehouse--0.3.sql
EXTRA_CLEAN = stage--0.3.sql stage--0.2--0.3.sql
PG_CONFIG  ?= pg_config

PCRE2_CFLAGS := $(shell pkg-config --cflags libpcre2-8 2>/dev/null)
PCRE2_LIBS   := $(shell pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8)

PG_CPPFLAGS = -I$(srcdir)/include $(PCRE2_CFLAGS)
PG_CFLAGS   = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-cast-function-type
SHLIB_LINK  = $(PCRE2_LIBS) -lcrypto

# pg_regress suites: one topic per file, see sql/ and expected/.
REGRESS      = pipelines rules masks mover quarantine lineage api_errors security health rule_kinds severity contracts drift regex replay_purge masking pii masking_contract masking_roles nested openlineage transform_methods transforms rule_messages alter lifecycle evolution contract_diff target_drop lineage_role publish retention backpressure
REGRESS_OPTS = --temp-config=$(srcdir)/test/stage.conf --load-extension=stage

# The top-level targets below work before PostgreSQL's server headers are
# installed: the scripts install them first and then call make again.
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
# No LLVM bitcode: keeps the build independent of clang being installed.
override with_llvm = no
include $(PGXS)
else
all install installcheck:
	@echo "PGXS not found: run 'make deps' (as root) first" >&2; exit 1
endif

stage--0.3.sql: $(sort $(wildcard $(srcdir)/sql/stage--0.3/*.sql))
	cat $^ > $@

# The update from 0.2: its own prologue and epilogue around the functions,
# views and triggers of the 0.3 pieces (not the schemas and tables of 00 and
# 10), created OR REPLACE.  Freeze it (as sql/stage--0.2--0.3.sql) when 0.3
# is released, as sql/stage--0.1--0.2.sql was.
UPDATE_PIECES = $(filter-out %/00_schemas.sql %/10_catalog.sql,$(sort $(wildcard $(srcdir)/sql/stage--0.3/*.sql)))
stage--0.2--0.3.sql: $(srcdir)/sql/stage--0.2--0.3/00_prologue.sql $(UPDATE_PIECES) $(srcdir)/sql/stage--0.2--0.3/99_epilogue.sql
	{ cat $(srcdir)/sql/stage--0.2--0.3/00_prologue.sql; \
	  cat $(UPDATE_PIECES) | sed -e 's/^CREATE FUNCTION /CREATE OR REPLACE FUNCTION /' \
	      -e 's/^CREATE VIEW /CREATE OR REPLACE VIEW /' \
	      -e 's/^CREATE TRIGGER /CREATE OR REPLACE TRIGGER /'; \
	  cat $(srcdir)/sql/stage--0.2--0.3/99_epilogue.sql; } > $@

.PHONY: deps demo test doccheck bench latency soak fuzz valgrind
deps:
	scripts/deps.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh

# the examples of README.md and docs/*.md, run and compared with their
# output (also part of make test); DOCCHECK_WRITE=1 rewrites the outputs
doccheck:
	scripts/test.sh doccheck

bench:
	scripts/bench.sh

latency:
	scripts/latency.sh

# 30 minutes at 5,000 rows/s with the worker on (not part of make test);
# SOAK_MINUTES=3 SOAK_RETENTION='30 seconds' for a quick run
soak:
	scripts/soak.sh

# libFuzzer harnesses of the pure C parts: FUZZ_SECONDS each (make test runs 15)
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

# regress and pgTAP with the server under valgrind (also part of make test)
valgrind:
	scripts/valgrind.sh

# every object is rebuilt when a header changes (PGXS tracks no headers)
$(OBJS): $(wildcard $(srcdir)/include/*.h)
