#!/usr/bin/env bash
# valgrind.sh: what `make valgrind` runs: memory checking of stage with
# valgrind's memcheck.
#
#   1. installs valgrind if it is missing (and what scripts/deps.sh installs),
#      builds stage and installs it into a private copy of PostgreSQL
#      (scripts/private_install.sh), as scripts/test.sh does;
#   2. starts ONE throwaway cluster (port 54360) whose postmaster runs under
#      valgrind, and runs against it, as the `postgres` user:
#        regress    pg_regress --use-existing over REGRESS of the Makefile
#        pgtap      pg_prove over test/pgtap/*.sql, one fresh database per file
#      (the isolation and TAP suites start servers of their own: not run here);
#   3. stops the cluster and reads every valgrind log: an error with a frame
#      in stage.so (src/*.c, include/*.h of this tree) in its stack, or, for
#      a use of freed memory, in the stack that freed it, fails the run and
#      is printed in full, with the test and, as far as the server log
#      tells, the statement that was running; other errors are counted per
#      top frame and do not fail.  The last line is
#        valgrind: N errors in stage.so, M elsewhere (suppressed: K)
#      and the exit status is non-zero if N > 0 or a suite failed.
#
#   scripts/valgrind.sh [SUITE...]   run only the named suites (regress, pgtap)
#   STAGE_TESTS="a b"                run only these tests: regress test names,
#                                    test/pgtap/ file names (without .sql)
#   STAGE_VALGRIND_KEEP=1            keep the logs (valgrind, server, regress
#                                    results and diffs); their path is printed
#
# Every server process runs many times slower under valgrind: the suites
# took about 4 minutes on 2 cores when this script was written.
#
# What valgrind can and cannot see here.  Debian's PostgreSQL is not built
# with USE_VALGRIND, so memory contexts do not tell memcheck about single
# chunks: palloc() carves chunks out of blocks that were malloc()ed whole.
#   - Not reported: reading or writing past the end of a small palloc'd
#     chunk while staying inside its block; using a small chunk after
#     pfree() (it goes to its context's free list); using memory of a
#     context's first ("keeper") block after a reset, which keeps it.
#   - Reported: using memory of a context after it was deleted, or of its
#     other blocks after a reset (they went back to free(): that is how a
#     result left in SPI memory after SPI_finish() shows), overruns of
#     large chunks (over 8 kB, a block each), and uninitialised palloc'd
#     (not palloc0'd) bytes once they decide a jump, index memory or reach
#     a system call.  But the "created by"/"alloc'd at" stack names whoever
#     malloc'd the block, often an unrelated palloc: only the error's own
#     stack, or for freed memory the stack that freed it, decides whether
#     stage is to blame; the others are shown as hints.
#   - Leaks are not checked: backends free memory by deleting contexts and
#     exit without freeing what lives as long as the process.
# Fully checked: memory from malloc (libc, OpenSSL, PCRE2), stack
# variables, invalid free(), overlapping memcpy, crashes, uninitialised
# bytes sent to a client or written to a file (not to WAL, whose padding
# test/valgrind.supp suppresses).  Shared memory (buffers, stage's worker
# slots) is tracked per process: what another process wrote there counts as
# initialised.  stage.databases is not set, so of the background worker
# only the launcher runs; batches run in the backends of the tests.  JIT is
# off: code LLVM generates at run time has no symbols (PCRE2's JIT stays:
# stage uses it; see test/valgrind.supp).
#
# shellcheck disable=SC2317  # functions are called indirectly
set -euo pipefail

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PORT=${STAGE_VALGRIND_PORT:-$(( ${STAGE_TEST_PORT_BASE:-54329} + 31 ))}
ALL_SUITES=(regress pgtap)

# say, only, show_tail, make_var
# shellcheck source=scripts/lib/suite.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/suite.sh"

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# ===================================== part 2: cluster, suites, report
# Runs as the cluster user.  WORK holds: tree/ (a copy of this tree), data/
# (the cluster, whose socket is WORK itself), logs/ (valgrind.PID.log,
# server.log, regress/).

cluster_start() {
	local conf f
	initdb -D "$WORK/data" -U postgres -A trust --no-locale -E UTF8 \
		>"$LOGS/initdb.log" 2>&1 || { cat "$LOGS/initdb.log"; return 1; }
	conf=$WORK/data/postgresql.conf
	{
		echo "listen_addresses = ''"
		echo "port = $PORT"
		echo "unix_socket_directories = '$WORK'"
		echo "fsync = off"
		# everything is 20-50 times slower under valgrind
		echo "statement_timeout = 0"
		echo "lock_timeout = 0"
		echo "idle_in_transaction_session_timeout = 0"
		echo "authentication_timeout = '10min'"
		echo "jit = off"
		# pg_regress names each test in application_name: the report
		# maps a process and a time to its test and statement
		echo "log_line_prefix = '%m [%p] [%b] [%a] '"
		echo "log_timezone = 'UTC'"
		echo "log_statement = 'all'"
		cat test/stage.conf
		# a --temp-config of REGRESS_OPTS other than test/stage.conf
		for f in $TEMP_CONFIGS; do
			[ "$f" -ef test/stage.conf ] || cat "$f"
		done
	} >>"$conf"

	# pg_ctl starts the postmaster through this wrapper; valgrind follows
	# every fork (backends, workers) with a log file per process
	cat >"$WORK/postgres-valgrind" <<-EOF
	#!/bin/sh
	date +%s.%N >"$LOGS/valgrind.start"
	exec valgrind --quiet --trace-children=yes --track-origins=yes \\
		--read-var-info=yes --num-callers=40 --error-limit=no \\
		--show-error-list=yes --time-stamp=yes --fullpath-after= \\
		--suppressions="$PWD/test/valgrind.supp" \\
		--log-file="$LOGS/valgrind.%p.log" \\
		"$PG_BINDIR/postgres" "\$@"
	EOF
	chmod 0755 "$WORK/postgres-valgrind"
	if ! pg_ctl -D "$WORK/data" -l "$LOGS/server.log" -p "$WORK/postgres-valgrind" \
		-w -t 600 start >/dev/null; then
		show_tail 40 "$LOGS/server.log"
		return 1
	fi
	head -n 1 "$WORK/data/postmaster.pid" >"$LOGS/postmaster.pid"
	export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres
}

cluster_stop() {
	[ -f "$WORK/data/postmaster.pid" ] || return 0
	pg_ctl -D "$WORK/data" -m fast -w -t 600 stop >/dev/null 2>&1 ||
		pg_ctl -D "$WORK/data" -m immediate -w -t 120 stop >/dev/null 2>&1 || true
}

suite_regress() {
	local tests opts o kept=() dbs=regression exts=() db e t n=0 rc=0
	if ! tests=$(make_var REGRESS) || ! opts=$(make_var REGRESS_OPTS); then
		echo "could not read REGRESS from the Makefile"
		return 1
	fi
	# --temp-config applies to a server pg_regress starts: its settings
	# are in the cluster already (cluster_start)
	for o in $opts; do
		case $o in
		--temp-config=*) continue ;;
		--dbname=*) dbs=${o#--dbname=} ;;
		--load-extension=*) exts+=("${o#--load-extension=}") ;;
		esac
		kept+=("$o")
	done
	# shellcheck disable=SC2086
	tests=$(only $tests)
	for t in $tests; do
		[ -f "sql/$t.sql" ] && n=$((n + 1))
	done
	if [ "$n" -eq 0 ]; then
		echo "skipped: no sql/<test>.sql file for REGRESS (${tests:-none selected})"
		return 2
	fi
	# with --use-existing, pg_regress neither creates its database nor
	# loads the extensions: as it would, with the settings it gives them
	for db in ${dbs//,/ }; do
		{
			echo "CREATE DATABASE \"$db\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';"
			for o in lc_messages lc_monetary lc_numeric lc_time; do
				echo "ALTER DATABASE \"$db\" SET $o TO 'C';"
			done
			echo "ALTER DATABASE \"$db\" SET bytea_output TO 'hex';"
			echo "ALTER DATABASE \"$db\" SET timezone_abbreviations TO 'Default';"
			echo "\\connect \"$db\""
			for e in "${exts[@]}"; do
				echo "CREATE EXTENSION IF NOT EXISTS \"$e\";"
			done
		} | psql -X -q -v ON_ERROR_STOP=1 -d postgres || return 1
	done
	mkdir -p "$LOGS/regress"
	# shellcheck disable=SC2086
	"$PGXS_TESTS/regress/pg_regress" \
		--use-existing --host="$WORK" --port="$PORT" \
		--bindir="$PG_BINDIR" --inputdir=. --outputdir="$LOGS/regress" \
		--no-locale --encoding=UTF8 \
		"${kept[@]}" $tests || rc=$?
	if [ "$rc" -ne 0 ]; then
		show_tail 400 "$LOGS/regress/regression.diffs"
		return 1
	fi
}

suite_pgtap() {
	local files=() f db rc=0 i=0
	for f in test/pgtap/*.sql; do
		[ -f "$f" ] && [ -n "$(only "$(basename "$f" .sql)")" ] && files+=("$f")
	done
	if [ "${#files[@]}" -eq 0 ]; then
		echo "skipped: no test/pgtap/*.sql (selected)"
		return 2
	fi
	if ! psql -X -q -v ON_ERROR_STOP=1 -d postgres \
		-c 'CREATE DATABASE stage_tap_template' \
		-c '\c stage_tap_template' \
		-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION stage'; then
		return 1
	fi
	for f in "${files[@]}"; do
		i=$((i + 1))
		db="stage_tap_$i"
		if ! createdb -T stage_tap_template "$db"; then
			rc=1
			continue
		fi
		PGAPPNAME="pg_prove/$(basename "$f" .sql)" \
			pg_prove --dbname "$db" --ext .sql --pset pager=off "$f" || rc=1
	done
	return "$rc"
}

# Reads the valgrind logs; prints the report and the summary line; exits 1
# if an error has a frame of stage in its own stack.
report() {
	perl - "$LOGS" "$REPO" <<-'EOF'
	use strict;
	use warnings;
	use Time::Local qw(timegm);

	my ($logs, $repo) = @ARGV;
	my $FRAMES = 15;

	sub slurp { open(my $fh, '<', $_[0]) or return ''; local $/; my $s = <$fh>; $s }
	my $vg_start = slurp("$logs/valgrind.start"); $vg_start =~ s/\s+//g;
	$vg_start ||= 0;
	my $pm_pid = slurp("$logs/postmaster.pid"); $pm_pid =~ s/\s+//g;

	# a frame of stage: its object is stage.so, or its source is in this tree
	sub is_stage_frame {
		my ($f) = @_;
		return $f =~ m{\(in [^)]*/stage\.so\)}
		    || $f =~ m{\(\Q$repo\E/(src|include)/[^)]*\)};
	}

	# ---- the server log: per pid, its backend type, application name and
	# the statements it logged, with their times
	my (%ptype, %papp, %stmts);
	{
		my $cur;
		open(my $fh, '<', "$logs/server.log") or die "no server log\n";
		while (my $l = <$fh>) {
			chomp $l;
			if ($l =~ /^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)\.(\d+) \S+ \[(\d+)\] \[([^\]]*)\] \[([^\]]*)\] (.*)$/) {
				my $t = timegm($6, $5, $4, $3, $2 - 1, $1) + "0.$7";
				my ($pid, $type, $app, $msg) = ($8, $9, $10, $11);
				$ptype{$pid} //= $type if $type ne '';
				$papp{$pid} = $app if $app ne '';
				undef $cur;
				if ($msg =~ /^LOG:\s+statement: (.*)$/) {
					$cur = [$t, $1];
					push @{$stmts{$pid}}, $cur;
				}
			} elsif (defined $cur) {
				$cur->[1] .= "\n" . $l;	# a statement on several lines
			}
		}
	}

	# ---- the valgrind logs
	my (%stage, %other, %supp, %warn, %origin_only);
	my ($n_stage, $n_other, $n_logs) = (0, 0, 0);
	my @pids;

	sub add_error {
		my ($pid, $e) = @_;
		return unless $e && @{$e->{sections}};
		my $main = $e->{sections}[0]{frames};
		my @aux = @{$e->{sections}}[1 .. $#{$e->{sections}}];
		# stage is to blame if it is in the error's own stack, or, for
		# memory used after it was freed, in the stack that freed it
		# (e.g. a result left in memory that SPI_finish() freed)
		my ($freed) = grep { $_->{title} =~ /free'd$/ } @aux;
		my ($culprit) = grep { is_stage_frame($_) } @$main;
		my $in_stage = defined $culprit;
		$e->{blame} = 'its stack';
		($culprit) = grep { is_stage_frame($_) } @{$freed->{frames}} if !$in_stage && $freed;
		if (!$in_stage && defined $culprit) {
			$in_stage = 1;
			$e->{blame} = 'the stack that freed the memory';
		}
		$e->{culprit} = strip($culprit) if $in_stage;
		my $key = join("\n", $e->{kind}, map { strip($_) } @$main);
		my $occ = { pid => $pid, elapsed => $e->{elapsed} };
		if ($in_stage) {
			$n_stage++;
			$stage{$key} //= { error => $e, occ => [] };
			push @{$stage{$key}{occ}}, $occ;
		} else {
			$n_other++;
			my $top = @$main ? strip($main->[0]) : '(no stack)';
			# the first named frame outside glibc (whose sources are
			# relative paths) and valgrind's preloads
			my ($caller) = grep { !/^\?\?\? / && !m{\(in [^)]*(/libc\.so|vgpreload_)} && !m{\((?!in /|/)} }
				map { strip($_) } @$main;
			$caller //= '';
			$caller = '' if $caller eq $top;
			(my $kind = $e->{kind}) =~ s/0x[0-9a-f]+/0x../g;
			my $k = join("\t", $kind, $top, $caller);
			$other{$k}++;
			if (grep { is_stage_frame($_) } map { @{$_->{frames}} } @aux) {
				$origin_only{$key} //= { error => $e, n => 0 };
				$origin_only{$key}{n}++;
			}
		}
	}

	# "at 0x4A2B3C: f (file.c:12)" -> "f (file.c:12)"
	sub strip { my ($f) = @_; $f =~ s/^\s*(at|by) 0x[0-9A-Fa-f]+: //; short($f) }
	# objects by their file name, this tree's sources relative to it
	sub short {
		my ($f) = @_;
		$f =~ s{\(in /[^)]*/([^/)]+)\)}{(in $1)};
		$f =~ s{\(\Q$repo\E/}{(};
		return $f;
	}

	for my $file (sort glob("$logs/valgrind.*.log")) {
		my ($pid) = $file =~ /valgrind\.(\d+)\.log$/ or next;
		$n_logs++;
		open(my $fh, '<', $file) or next;
		my ($live, $e) = (1, undef);
		my %sup;
		while (my $l = <$fh>) {
			chomp $l;
			if ($l =~ /^--(?:[\d:.]+ )?\d+-- +used_suppression: +(\d+) (\S+) (\S+)$/) {
				$sup{$2} += $1;
				next;
			}
			next unless $l =~ /^==(?:([\d:.]+) )?\d+== ?(.*)$/;
			my ($ts, $c) = ($1, $2);
			if ($c =~ /^ERROR SUMMARY:/) {
				add_error($pid, $e);
				undef $e;
				$live = 0;	# after this, the list at exit repeats (and inherits) errors
				next;
			}
			next unless $live;
			if ($c eq '') {
				add_error($pid, $e);
				undef $e;
			} elsif ($c =~ /^\s+(at|by) 0x/) {
				push @{$e->{sections}[-1]{frames}}, $c if $e;
			} elsif ($c =~ /^ \S/ && $e) {
				if (@{$e->{sections}} == 1 && !@{$e->{sections}[0]{frames}}) {
					# a detail before the stack ("Access not within
					# mapped region", of a crash)
					$e->{kind} .= " ($1)" if $c =~ /^ (.*)/;
				} else {
					push @{$e->{sections}}, { title => $c, frames => [] };
				}
			} elsif ($c =~ /^Warning: (.*)/) {
				(my $w = $1) =~ s/0x[0-9a-f]+/0x../g;
				$warn{$w}++;
			} elsif ($c =~ /^\S/) {
				add_error($pid, $e);
				$e = { kind => $c, elapsed => $ts, sections => [ { title => '', frames => [] } ] };
			} elsif ($e) {
				push @{$e->{sections}}, { title => $c, frames => [] };
			}
		}
		add_error($pid, $e);
		# a forked process inherits the counts of its parent: the
		# postmaster's are subtracted from every other process's
		push @pids, [$pid, \%sup];
	}
	my %pm_sup = map { %{$_->[1]} } grep { $_->[0] eq $pm_pid } @pids;
	for my $p (@pids) {
		my ($pid, $sup) = @$p;
		for my $name (keys %$sup) {
			my $n = $sup->{$name};
			$n -= $pm_sup{$name} // 0 unless $pid eq $pm_pid;
			$supp{$name} += $n if $n > 0;
		}
	}
	my $n_supp = 0;
	$n_supp += $_ for values %supp;

	# the time of an error: valgrind's elapsed time since the postmaster
	# started ("days:hh:mm:ss.mmm"), plus that start
	sub err_time {
		my ($el) = @_;
		return undef unless $el && $vg_start;
		my ($d, $h, $m, $s) = split /:/, $el;
		return $vg_start + (($d * 24 + $h) * 60 + $m) * 60 + $s;
	}
	sub statement_at {
		my ($pid, $t) = @_;
		return undef unless defined $t && $stmts{$pid};
		my $found;
		for my $s (@{$stmts{$pid}}) {
			last if $s->[0] > $t;
			$found = $s->[1];
		}
		return $found;
	}

	my $i = 0;
	if (%stage) {
		my (%by, %nstacks, %tests);
		for my $g (values %stage) {
			my $c = "$g->{error}{culprit}  [in $g->{error}{blame}]";
			$by{$c} += @{$g->{occ}};
			$nstacks{$c}++;
			$tests{$c}{$papp{$_->{pid}} || $ptype{$_->{pid}} || 'pid ' . $_->{pid}} = 1 for @{$g->{occ}};
		}
		print "\n=== valgrind: errors in stage.so, by their first frame of stage\n";
		for my $c (sort { $by{$b} <=> $by{$a} } keys %by) {
			printf "%6d  %s\n        %d distinct stack%s; %s\n", $by{$c}, $c, $nstacks{$c},
				$nstacks{$c} == 1 ? '' : 's', join(', ', sort keys %{$tests{$c}});
		}
		print "\n=== valgrind: errors in stage.so, each distinct stack\n";
		for my $key (sort { @{$stage{$b}{occ}} <=> @{$stage{$a}{occ}} } keys %stage) {
			my ($e, $occ) = ($stage{$key}{error}, $stage{$key}{occ});
			$i++;
			my %procs = map { $_->{pid} => 1 } @$occ;
			printf "\n--- [%d] %s  (%d report%s in %d process%s; stage is in %s)\n", $i, $e->{kind},
				scalar @$occ, @$occ == 1 ? '' : 's',
				scalar keys %procs, keys %procs == 1 ? '' : 'es', $e->{blame};
			for my $sec (@{$e->{sections}}) {
				print "   $sec->{title}\n" if $sec->{title} ne '';
				my @f = @{$sec->{frames}};
				my $more = @f > $FRAMES ? @f - $FRAMES : 0;
				my @rest = $more ? splice(@f, $FRAMES) : ();
				print "   ", short($_), "\n" for @f;
				next unless $more;
				print "      ... $more more frames\n";
				# the frames of stage, when none is shown yet
				my @st = grep { is_stage_frame($_) } @rest;
				if (@st && !grep { is_stage_frame($_) } @f) {
					print "      of which in stage:\n";
					print "   ", short($_), "\n" for @st;
				}
			}
			my (%seen, $shown);
			for my $o (@$occ) {
				my $pid = $o->{pid};
				my $who = $papp{$pid} || $ptype{$pid} || ($pid eq $pm_pid ? 'postmaster' : 'unknown process');
				my $st = statement_at($pid, err_time($o->{elapsed}));
				next if $seen{$pid, $st // ''}++;
				if (++$shown > 5) {
					print "   (and more)\n";
					last;
				}
				print "   in pid $pid ($who)\n";
				if (defined $st) {
					$st =~ s/\s+$//;
					my @l = split /\n/, $st;
					splice(@l, 12, @l - 12, '   ...') if @l > 12;
					print "      last statement logged before the error:\n";
					print "        $_\n" for @l;
				}
			}
		}
	}
	if (%other) {
		print "\n=== valgrind: errors elsewhere (not failing), per top frame\n";
		for my $k (sort { $other{$b} <=> $other{$a} || $a cmp $b } keys %other) {
			my ($kind, $top, $caller) = split /\t/, $k;
			printf "%6d  %s\n        at %s\n", $other{$k}, $kind, $top;
			print "        from $caller\n" if $caller ne '';
		}
	}
	if (%origin_only) {
			print "\n=== of those, errors whose allocation or origin names stage.so\n";
		print "    (without USE_VALGRIND, who malloc'd a block of a memory context is only a hint)\n";
		for my $key (keys %origin_only) {
			my $e = $origin_only{$key}{error};
			printf "\n--- %s  (%d times)\n", $e->{kind}, $origin_only{$key}{n};
			for my $sec (@{$e->{sections}}) {
				print "   $sec->{title}\n" if $sec->{title} ne '';
				my @f = @{$sec->{frames}};
				splice(@f, $FRAMES) if @f > $FRAMES;
				print "   ", short($_), "\n" for @f;
			}
		}
	}
	if (%warn) {
		print "\n=== valgrind: warnings (not errors)\n";
		printf "%6d  %s\n", $warn{$_}, $_ for sort { $warn{$b} <=> $warn{$a} } keys %warn;
	}
	if (%supp) {
		print "\n=== valgrind: suppressed, per entry of test/valgrind.supp\n";
		printf "%6d  %s\n", $supp{$_}, $_ for sort { $supp{$b} <=> $supp{$a} } keys %supp;
	}
	if (!$n_logs) {
		print "\nno valgrind log: the server did not run under valgrind\n";
		exit 1;
	}
	printf "\n(%d processes ran under valgrind)\n", $n_logs;
	my $summary = sprintf "valgrind: %d errors in stage.so, %d elsewhere (suppressed: %d)\n",
		$n_stage, $n_other, $n_supp;
	print $summary;
	if (open(my $out, '>', "$logs/summary")) {
		print $out $summary;
		close $out;
	}
	exit($n_stage > 0 ? 1 : 0);
	EOF
}

run_suites() {
	local s rc t0 t1 vrc=0 passed=() failed=() skipped=() times=()
	PGXS_TESTS=$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")/test
	LOGS=$WORK/logs
	mkdir -p "$LOGS"
	TEMP_CONFIGS=
	for s in $(make_var REGRESS_OPTS); do
		case $s in --temp-config=*) TEMP_CONFIGS="$TEMP_CONFIGS ${s#--temp-config=}" ;; esac
	done
	trap cluster_stop EXIT
	trap 'exit 130' INT TERM
	say "start the cluster under valgrind (port $PORT)"
	t0=$SECONDS
	if ! cluster_start; then
		cluster_stop
		echo "could not start the cluster under valgrind"
		return 1
	fi
	echo "started in $(fmt_secs $((SECONDS - t0)))"
	for s in "$@"; do
		say "suite $s (under valgrind)"
		t0=$SECONDS
		rc=0
		"suite_$s" || rc=$?
		t1=$((SECONDS - t0))
		times+=("$s $(fmt_secs "$t1")")
		case $rc in
		0) passed+=("$s"); echo "--- suite $s: passed in $(fmt_secs "$t1")" ;;
		2) skipped+=("$s") ;;
		*) failed+=("$s"); echo "--- suite $s: FAILED in $(fmt_secs "$t1")" ;;
		esac
	done
	say "stop the cluster"
	t0=$SECONDS
	cluster_stop
	echo "stopped in $(fmt_secs $((SECONDS - t0)))"
	trap - EXIT

	report || vrc=$?
	echo
	printf 'suite times:'
	printf ' %s;' "${times[@]}"
	echo
	echo "passed:  ${passed[*]:-none}"
	echo "failed:  ${failed[*]:-none}"
	echo "skipped: ${skipped[*]:-none}"
	[ "${#failed[@]}" -eq 0 ] && [ "$vrc" -eq 0 ]
}

if [ "${1:-}" = "--inner" ]; then
	WORK=$2 PG_BINDIR=$3 REPO=$4
	shift 4
	export PATH="$PG_BINDIR:$PATH:/usr/sbin:/sbin"
	cd "$WORK/tree"
	run_suites "$@"
	exit
fi

# ========================================= part 1: build, install, hand over

suites=("$@")
[ "${#suites[@]}" -gt 0 ] || suites=("${ALL_SUITES[@]}")
for s in "${suites[@]}"; do
	case " ${ALL_SUITES[*]} " in *" $s "*) ;;
	*) echo "unknown suite '$s' (known: ${ALL_SUITES[*]})" >&2; exit 2 ;;
	esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
started=$SECONDS

"$repo/scripts/deps.sh"
if ! command -v valgrind >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "stage: valgrind is missing; as root: apt-get install -y valgrind libc6-dbg" >&2
		exit 1
	fi
	echo "stage: installing valgrind"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# libc6-dbg: glibc's symbols, for readable stacks and suppressions by name
	apt-get install -y -qq --no-install-recommends valgrind libc6-dbg >/dev/null
	command -v valgrind >/dev/null 2>&1 || { echo "stage: failed to install valgrind" >&2; exit 1; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/stage-valgrind.XXXXXX")
cleanup() {
	local rc=$?
	# the inner part stops its cluster; this is for an interrupted run
	if [ -f "$work/data/postmaster.pid" ]; then
		if [ "$(id -u)" -eq 0 ]; then
			runuser -u postgres -- "$bindir/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
		else
			"$bindir/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
		fi
	fi
	if [ -n "${STAGE_VALGRIND_KEEP:-}" ] && [ -d "$work/logs" ]; then
		rm -rf "$work/install" "$work/data" "$work/tree"
		[ -n "$finished" ] || echo "logs kept in $work/logs"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
bindir=''
finished=''
trap cleanup EXIT
trap 'exit 130' INT TERM

say "build and install (privately, in $work/install)"
if ! make -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" ||
	! bindir=$("$repo/scripts/private_install.sh" "$work/install" | tail -n 1); then
	echo "build failed"
	exit 1
fi
mkdir -p "$work/tree" "$work/logs"
# a snapshot of the tree (others may be editing it); a file changing while
# tar reads it (tar's status 1) is no reason to stop
{
	tar -C "$repo" --exclude=./.git --exclude=./tmp_install \
		--warning=no-file-changed --warning=no-file-removed -cf - . || [ $? -eq 1 ]
} | tar -C "$work/tree" -xf -
rc=0
if [ "$(id -u)" -eq 0 ]; then
	chown -R postgres:postgres "$work"
	chmod 0755 "$work"
	(cd "$work" && runuser -u postgres -- env PATH="$PATH" STAGE_TESTS="${STAGE_TESTS:-}" \
		bash "$work/tree/scripts/valgrind.sh" --inner "$work" "$bindir" "$repo" "${suites[@]}") || rc=$?
else
	bash "$work/tree/scripts/valgrind.sh" --inner "$work" "$bindir" "$repo" "${suites[@]}" || rc=$?
fi
echo "total time: $(fmt_secs $((SECONDS - started)))"
if [ -n "${STAGE_VALGRIND_KEEP:-}" ]; then
	echo "logs kept in $work/logs"
elif [ "$rc" -ne 0 ]; then
	echo "(run again with STAGE_VALGRIND_KEEP=1 to keep the valgrind and server logs)"
fi
finished=1
# the summary line of the report, last
if [ -s "$work/logs/summary" ]; then
	cat "$work/logs/summary"
else
	echo "valgrind: no report (see above)"
fi
exit "$rc"
