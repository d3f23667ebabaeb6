#!/usr/bin/env perl
# doccheck.pl: the runner of the executable documentation (suite doccheck
# of scripts/test.sh, `make doccheck`).
#
# A page (README.md, docs/*.md) is read top to bottom.  Each ```sql block
# is run, in order, in one psql session on the database "shop" of the
# page's own throwaway cluster; the plain ``` block right after it, if any,
# is the output it must print.  The conventions (the <!-- doccheck: ... -->
# comments, which output a block shows, what varies) are described in
# docs/hacking.md, "Executable documentation"; this file must keep to them.
#
#   doccheck.pl conf PAGE     the postgresql.conf lines the page (and its
#                             preambles) ask for, for the cluster
#   doccheck.pl run PAGE      run the page against the server of PGHOST and
#                             PGPORT, from the current directory (relative
#                             file names in the examples are relative to
#                             it); print a failed block's page, number,
#                             line and diff; exit 1 if any failed
#   doccheck.pl summary FILE  the totals of the results the runs appended
#                             to FILE (DOCCHECK_RESULTS)
#
#   DOCCHECK_RESULTS=FILE     run appends its counts and skips to FILE
#   DOCCHECK_TRACE=1          run prints everything psql printed
#   DOCCHECK_WRITE=1          run writes PAGE.doccheck-new, the page with
#                             every output block that differs replaced by
#                             what the server printed (scripts/test.sh
#                             moves it over the repository's page)
#
# It never changes the page itself, and runs nothing but psql.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Temp qw(tempfile tempdir);

binmode STDOUT, ':encoding(UTF-8)';
binmode STDERR, ':encoding(UTF-8)';

my $DB = 'shop';
# every page's cluster; a page adds its own with <!-- doccheck: conf ... -->
my @BASE_CONF = ("timezone = 'UTC'", "lc_messages = 'C'");
my $PSQL_TIMEOUT = 600;

# ------------------------------------------------------------ reading a page

sub read_lines {
	my ($path) = @_;
	open my $fh, '<:encoding(UTF-8)', $path or die "doccheck: cannot read $path: $!\n";
	my @lines = <$fh>;
	close $fh;
	chomp @lines;
	return \@lines;
}

# A page as a list of items, in order: setup blocks and sql blocks (with the
# directives that precede them and the output block that follows them).
sub parse_page {
	my ($path) = @_;
	my $lines = read_lines($path);
	my %page = (path => $path, lines => $lines, items => [], conf => [],
		preambles => [], synopses => 0);
	my %next;              # directives for the next sql block
	my $nblock = 0;
	my $err = sub { die "doccheck: $path:$_[0]: $_[1]\n" };
	my $i = 0;
	while ($i < @$lines) {
		my $l = $lines->[$i];
		if ($l =~ /^<!--\s*doccheck:\s*(.*)$/) {
			my ($start, $rest, @body) = ($i + 1, $1);
			if ($rest !~ s/\s*-->\s*$//) {
				$i++;
				while ($i < @$lines && $lines->[$i] !~ /^\s*-->\s*$/) {
					push @body, $lines->[$i++];
				}
				$err->($start, 'unterminated doccheck comment') if $i >= @$lines;
			}
			$i++;
			my ($word, $args) = $rest =~ /^(\S+)\s*(.*)$/ or $err->($start, 'empty directive');
			if ($word eq 'setup') {
				my $sql = join("\n", ($args ne '' ? ($args) : ()), @body) . "\n";
				push @{ $page{items} }, { kind => 'setup', page => $path, line => $start, text => $sql };
			} elsif ($word eq 'preamble') {
				$err->($start, 'preamble names no page') if $args eq '';
				push @{ $page{preambles} },
					map { my $p = dirname($path) . "/$_"; $p =~ s{^\./}{}; $p } split ' ', $args;
			} elsif ($word eq 'conf') {
				push @{ $page{conf} }, grep { /\S/ } ($args, @body);
			} elsif ($word eq 'skip') {
				$err->($start, 'a skip needs a reason: <!-- doccheck: skip (why) -->') if $args eq '';
				$args =~ s/^\((.*)\)$/$1/;
				$next{skip} = $args;
			} elsif ($word eq 'vary') {
				$err->($start, 'vary names nothing') if $args eq '';
				push @{ $next{vary} }, parse_vary($args, sub { $err->($start, @_) });
			} elsif ($word eq 'output' && $args eq 'all') {
				$next{all} = 1;
			} else {
				$err->($start, "unknown directive '$word' (setup, preamble, conf, skip, vary, output all)");
			}
			next;
		}
		if ($l =~ /^( {0,3})(`{3,})\s*(\S*)\s*(.*?)\s*$/) {
			my ($indent, $fence, $lang, $info) = ($1, $2, $3, $4);
			my ($start, $body) = ($i + 1, []);
			$i = read_fence($lines, $i, $indent, $fence, $body);
			$err->($start, 'unterminated code block') if $i < 0;
			if ($lang ne 'sql') {
				$err->($start, 'a doccheck directive before a block that is not ```sql')
					if %next;
				next;
			}
			if ($info eq 'synopsis') {
				$err->($start, 'a doccheck directive before a synopsis') if %next;
				$page{synopses}++;
				next;
			}
			$err->($start, "unknown info string '$info' (only 'synopsis')") if $info ne '';
			my %item = (kind => 'sql', page => $path, n => ++$nblock, line => $start,
				text => join("\n", @$body) . "\n", %next);
			%next = ();
			# its output: a plain block right after it
			if ($i < @$lines && $lines->[$i] =~ /^( {0,3})(`{3,})\s*$/) {
				my ($oindent, $ofence, $out) = ($1, $2, []);
				my $ostart = $i;
				$i = read_fence($lines, $i, $oindent, $ofence, $out);
				$err->($ostart + 1, 'unterminated output block') if $i < 0;
				$item{out} = { first => $ostart + 1, last => $i - 2, lines => $out,
					indent => $oindent };
			}
			push @{ $page{items} }, \%item;
			next;
		}
		$i++;
	}
	$err->(scalar @$lines, 'a doccheck directive at the end, before no block') if %next;
	return \%page;
}

# reads the fenced block opening at line $i; its lines (the indentation of
# the fence removed) go to @$body; returns the line after the closing fence,
# or -1 if there is none
sub read_fence {
	my ($lines, $i, $indent, $fence, $body) = @_;
	my $n = length $indent;
	$i++;
	while ($i < @$lines) {
		my $l = $lines->[$i];
		return $i + 1 if $l =~ /^ {0,3}\Q$fence\E`*\s*$/;
		# (not when $n is 0: perl 5.36 then removes a space of a UTF-8 line)
		$l =~ s/^ {1,$n}// if $n > 0;
		push @$body, $l;
		$i++;
	}
	return -1;
}

# "started_at /\d+ ms/": column or field names, and regular expressions
sub parse_vary {
	my ($args, $err) = @_;
	my @v;
	while ($args =~ /\G\s*(?:\/((?:[^\/\\]|\\.)*)\/|([^\s\/]+))/gc) {
		if (defined $1) {
			my $re = eval { qr/$1/ } or $err->("bad regular expression /$1/");
			push @v, { re => $re };
		} else {
			push @v, { col => $2 };
		}
	}
	$err->("cannot read vary '$args'") if (pos($args) // 0) < length($args) && substr($args, pos($args) // 0) =~ /\S/;
	return @v;
}

# ------------------------------------------------- statements of a block

# Splits a block into the units psql runs one after the other: statements
# (up to their ';', with what follows it on the line if that is only a
# comment), psql meta-commands (one line; \copy ... from stdin with its data
# up to \.), COPY ... FROM STDIN with its data.  Quotes, dollar quotes,
# comments and parentheses are followed the way psql follows them.
sub split_units {
	my ($text) = @_;
	my (@units, $buf, $has, $state, $tag, $cdepth, $pdepth, $copy);
	($buf, $has, $state, $tag, $cdepth, $pdepth, $copy) = ('', 0, '', '', 0, 0, 0);
	my $finish = sub {
		push @units, $buf;
		$copy = 1 if $buf =~ /^(?:\s|--[^\n]*\n)*(?:\\copy|COPY)\b[^;]*?\bFROM\s+STDIN\b/i;
		($buf, $has, $pdepth) = ('', 0, 0);
	};
	for my $line (split /\n/, $text) {
		if ($copy) {
			$units[-1] .= "$line\n";
			$copy = 0 if $line eq '\\.';
			next;
		}
		if ($state eq '' && !$has && $line =~ /^\s*\\/) {
			$buf .= "$line\n";
			$finish->();
			next;
		}
		my ($i, $seg, $eol) = (0, 0, 0);
		my $len = length $line;
		while ($i < $len) {
			my $c = substr($line, $i, 1);
			my $c2 = substr($line, $i, 2);
			if ($state eq "'") {
				if ($c eq "'") { $state = '' unless substr($line, $i + 1, 1) eq "'"; $i++ if $state; }
				$i++;
				next;
			}
			if ($state eq 'E') {
				if ($c eq '\\') { $i += 2; next; }
				if ($c eq "'") { $state = '' unless substr($line, $i + 1, 1) eq "'"; $i++ if $state; }
				$i++;
				next;
			}
			if ($state eq '"') {
				$state = '' if $c eq '"';
				$i++;
				next;
			}
			if ($state eq '$') {
				if (substr($line, $i, length $tag) eq $tag) { $state = ''; $i += length $tag; next; }
				$i++;
				next;
			}
			if ($state eq '/*') {
				if ($c2 eq '/*') { $cdepth++; $i += 2; next; }
				if ($c2 eq '*/') { $state = '' if --$cdepth == 0; $i += 2; next; }
				$i++;
				next;
			}
			last if $c2 eq '--';
			if ($c2 eq '/*') { ($state, $cdepth) = ('/*', 1); $i += 2; next; }
			if ($c eq "'") {
				my $e = $i > 0 && substr($line, $i - 1, 1) =~ /[Ee]/
					&& ($i == 1 || substr($line, $i - 2, 1) !~ /\w/);
				$state = $e ? 'E' : "'";
				($has, $i) = (1, $i + 1);
				next;
			}
			if ($c eq '"') { ($state, $has, $i) = ('"', 1, $i + 1); next; }
			if ($c eq '$' && ($i == 0 || substr($line, $i - 1, 1) !~ /\w/)
				&& substr($line, $i) =~ /^(\$(?:[A-Za-z_]\w*)?\$)/) {
				($state, $tag, $has) = ('$', $1, 1);
				$i += length $1;
				next;
			}
			if ($c eq '\\') { $eol = 1; last; }    # \gset, \gx ... end the statement
			$pdepth++ if $c eq '(';
			$pdepth-- if $c eq ')';
			if ($c eq ';' && $pdepth <= 0) {
				my $rest = substr($line, $i + 1);
				if ($rest =~ /^\s*(?:--.*)?$/) {
					$buf .= substr($line, $seg) . "\n";
					$finish->();
					$seg = $len;
					last;
				}
				$buf .= substr($line, $seg, $i + 1 - $seg) . "\n";
				$finish->();
				$seg = $i + 1;
				$i++;
				next;
			}
			$has = 1 if $c =~ /\S/;
			$i++;
		}
		$buf .= substr($line, $seg) . "\n" if $seg < $len || ($seg == 0 && $len == 0);
		$finish->() if $eol;
	}
	die "a statement without its ';' at the end of the block\n" if $has || $state ne '';
	# trailing comments belong to the last unit
	if ($buf =~ /\S/) {
		if (@units) { $units[-1] .= $buf; } else { push @units, $buf; }
	}
	return @units;
}

# ----------------------------------------------------------- running a page

sub conf_of {
	my ($path, $seen) = @_;
	return () if $seen->{$path}++;
	my $page = parse_page($path);
	return ((map { conf_of($_, $seen) } @{ $page->{preambles} }), @{ $page->{conf} });
}

# the items of a page's preambles, in order (each page once)
sub preamble_items {
	my ($page, $seen) = @_;
	my @items;
	for my $p (@{ $page->{preambles} }) {
		next if $seen->{$p}++;
		my $pp = parse_page($p);
		push @items, preamble_items($pp, $seen), @{ $pp->{items} };
	}
	return @items;
}

sub run_psql {
	my ($script) = @_;
	my $dir = tempdir('doccheck.XXXXXX', TMPDIR => 1, CLEANUP => 1);
	open my $fh, '>:encoding(UTF-8)', "$dir/in.sql" or die "doccheck: $dir/in.sql: $!\n";
	print $fh $script;
	close $fh;
	my $rc = system("timeout $PSQL_TIMEOUT psql -X -q -d $DB <'$dir/in.sql' >'$dir/out' 2>&1");
	my $out = read_lines("$dir/out");
	return ($rc, $out);
}

sub psql_ok {
	my ($db, $sql) = @_;
	my $out = `psql -X -q -v ON_ERROR_STOP=1 -d $db -c '$sql' 2>&1`;
	die "doccheck: $sql: $out" if $?;
}

# what a block shows: the output of its last statement that printed
# something, after the output of every earlier statement that raised an
# error, a warning or a notice ("output all": every statement's output)
sub shown_output {
	my ($item, $outs) = @_;
	my @sel;
	if ($item->{all}) {
		@sel = @$outs;
	} else {
		my $last = -1;
		for my $k (0 .. $#$outs) {
			$last = $k if grep { /\S/ } @{ $outs->[$k] };
		}
		for my $k (0 .. $#$outs) {
			push @sel, $outs->[$k]
				if $k == $last || grep { /^(?:ERROR|WARNING|NOTICE|INFO|FATAL):/ } @{ $outs->[$k] };
		}
	}
	return normalize([map { @$_ } @sel]);
}

sub normalize {
	my ($lines) = @_;
	my @l = map { (my $x = $_) =~ s/\s+$//; $x } grep { !/^LOCATION:  / } @$lines;
	shift @l while @l && $l[0] eq '';
	pop @l while @l && $l[-1] eq '';
	return \@l;
}

sub block_failed_silently {
	my ($units, $outs) = @_;
	for my $k (0 .. $#$outs) {
		for (@{ $outs->[$k] }) {
			return $k if /^(?:ERROR|FATAL|PANIC):/;
			return $k if $units->[$k] =~ /^\s*\\/
				&& /No such file or directory|^invalid command|^could not |^\\\w+: /;
		}
	}
	return undef;
}

# the lines with what varies replaced by "~", and spacing evened out (a
# varying value changes the width of its column)
sub masked {
	my ($lines, $vary) = @_;
	my @l = @$lines;
	my %cols = map { $_->{col} => 1 } grep { $_->{col} } @$vary;
	my @res = map { $_->{re} } grep { $_->{re} } @$vary;
	if (%cols) {
		my @spans;    # columns of the current aligned table to mask
		for my $k (0 .. $#l) {
			if ($l[$k] =~ /^-+(?:\+-+)*$/ && $k > 0) {
				@spans = ();
				my $pos = 0;
				for my $seg (split /\+/, $l[$k]) {
					my $name = substr($l[$k - 1] . (' ' x length $l[$k]), $pos, length $seg);
					$name =~ s/^\s+|\s+$//g;
					push @spans, [$pos, length $seg] if $cols{$name};
					$pos += length($seg) + 1;
				}
				next;
			}
			if ($l[$k] eq '' || $l[$k] =~ /^-\[ RECORD/) {
				@spans = ();
			}
			if (@spans) {
				my $row = $l[$k] . ' ' x 4096;
				substr($row, $_->[0], $_->[1]) = ' ~' . ' ' x ($_->[1] - 2) for @spans;
				$l[$k] = $row;
				next;
			}
			# expanded display: "name | value"
			if ($l[$k] =~ /^(\S.*?)\s*\|(?: (.*))?$/ && $cols{$1}) {
				$l[$k] = "$1 | ~";
			}
		}
	}
	for my $re (@res) {
		s/$re/~/g for @l;
	}
	for (@l) {
		s/-{2,}/-/g;
		s/\s+/ /g;
		s/^ | $//g;
	}
	return \@l;
}

sub show_diff {
	my ($want, $got) = @_;
	my $dir = tempdir('doccheck.XXXXXX', TMPDIR => 1, CLEANUP => 1);
	for (['documented', $want], ['printed', $got]) {
		open my $fh, '>:encoding(UTF-8)', "$dir/$_->[0]" or die;
		print $fh map { "$_\n" } @{ $_->[1] };
		close $fh;
	}
	my $d = `cd '$dir' && diff -u documented printed`;
	utf8::decode($d);
	print $d;
}

sub run_page {
	my ($path) = @_;
	my $page = parse_page($path);
	my @pre = preamble_items($page, { $path => 1 });
	my @items = @{ $page->{items} };
	my $script = "\\set SHOW_CONTEXT never\n\\pset footer off\n";
	my (%units, @problems);
	my $emit = sub {
		my ($id, $item) = @_;
		my @u = eval { split_units($item->{text}) };
		if ($@) {
			chomp(my $m = $@);
			my $what = $item->{kind} eq 'sql' ? "block $item->{n}" : 'setup';
			push @problems, ($id =~ /^P/ ? "$path: preamble $item->{page}" : $path)
				. " $what (line $item->{line}): $m";
			return;
		}
		$units{$id} = \@u;
		for my $k (0 .. $#u) {
			$script .= "\\echo '\@\@doccheck $id $k\@\@'\n$u[$k]";
		}
	};
	for my $k (0 .. $#pre) {
		next if $pre[$k]{skip};
		$emit->("P$k", $pre[$k]);
	}
	for my $k (0 .. $#items) {
		next if $items[$k]{skip};
		$emit->("I$k", $items[$k]);
	}
	$script .= "\\echo '\@\@doccheck end 0\@\@'\n";

	psql_ok('postgres', "CREATE DATABASE $DB");
	my ($rc, $out) = run_psql($script);
	print map { "| $_\n" } @$out if $ENV{DOCCHECK_TRACE};
	my (%outs, $cur);
	for (@$out) {
		if (/^\@\@doccheck (\S+) (\d+)\@\@$/) {
			$cur = $outs{$1}[$2] = [];
			next;
		}
		push @$cur, $_ if $cur;
	}
	if (!$outs{end}) {
		push @problems, "$path: psql stopped before the end (exit status $rc); its last lines:\n"
			. join("\n", @$out[($#$out > 20 ? $#$out - 20 : 0) .. $#$out]);
	}

	my %n = (checked => 0, compared => 0, skipped => 0, failed => 0);
	my (@skips, %rewrite);
	for my $k (0 .. $#items) {
		my $it = $items[$k];
		my $where = $it->{kind} eq 'sql' ? "block $it->{n} (line $it->{line})"
			: "setup (line $it->{line})";
		if ($it->{skip}) {
			$n{skipped}++;
			push @skips, "$path:$it->{line}\t$it->{skip}";
			print "skip $path $where: $it->{skip}\n";
			next;
		}
		my $u = $units{"I$k"} or next;    # reported above
		my $o = $outs{"I$k"} or next;     # psql stopped
		$o->[$_] //= [] for 0 .. $#$u;
		if ($it->{kind} eq 'setup' || !$it->{out}) {
			if (defined(my $bad = block_failed_silently($u, $o))) {
				$n{failed}++;
				print "FAIL $path $where: a statement failed\n";
				print "--- the statement:\n$u->[$bad]--- printed:\n",
					join("\n", @{ normalize($o->[$bad]) }), "\n";
			}
			$n{checked}++ if $it->{kind} eq 'sql';
			next;
		}
		$n{checked}++;
		$n{compared}++;
		my $got = shown_output($it, $o);
		my $want = normalize($it->{out}{lines});
		my $vary = $it->{vary} || [];
		my $same = @$vary ? join("\n", @{ masked($want, $vary) }) eq join("\n", @{ masked($got, $vary) })
			: join("\n", @$want) eq join("\n", @$got);
		next if $same;
		$n{failed}++;
		$rewrite{$k} = $got;
		print "FAIL $path $where: the output differs\n";
		my @sql = split /\n/, $it->{text};
		print "--- the block:\n", join("\n", @sql[0 .. ($#sql > 7 ? 7 : $#sql)]),
			($#sql > 7 ? "\n..." : ''), "\n";
		show_diff($want, $got);
	}
	for (@problems) {
		$n{failed}++;
		print "FAIL $_\n";
	}
	printf "%s: %d blocks checked (%d against their output), %d skipped, %d synopses, %s\n",
		$path, $n{checked}, $n{compared}, $n{skipped}, $page->{synopses},
		$n{failed} ? "$n{failed} FAILED" : 'all as documented';

	if ($ENV{DOCCHECK_RESULTS}) {
		open my $fh, '>>:encoding(UTF-8)', $ENV{DOCCHECK_RESULTS} or die;
		print $fh "page\t$path\t$n{checked}\t$n{compared}\t$n{skipped}\t$n{failed}\n";
		print $fh "skip\t$_\n" for @skips;
		close $fh;
	}
	write_page($page, \%rewrite) if $ENV{DOCCHECK_WRITE} && %rewrite;
	return $n{failed} ? 1 : 0;
}

sub write_page {
	my ($page, $rewrite) = @_;
	my @lines = @{ $page->{lines} };
	# from the bottom, so that line numbers above stay right
	for my $k (sort { $b <=> $a } keys %$rewrite) {
		my $o = $page->{items}[$k]{out};
		splice @lines, $o->{first}, $o->{last} - $o->{first} + 1,
			map { $_ eq '' ? '' : "$o->{indent}$_" } @{ $rewrite->{$k} };
	}
	my $new = "$page->{path}.doccheck-new";
	open my $fh, '>:encoding(UTF-8)', $new or die "doccheck: $new: $!\n";
	print $fh map { "$_\n" } @lines;
	close $fh;
	print "wrote $new (", scalar(keys %$rewrite), " output blocks replaced)\n";
}

sub summary {
	my ($file) = @_;
	my (%t, %why, @fail);
	for (@{ read_lines($file) }) {
		my @f = split /\t/;
		if ($f[0] eq 'page') {
			$t{checked} += $f[2];
			$t{skipped} += $f[4];
			push @fail, $f[1] if $f[5];
		} elsif ($f[0] eq 'skip') {
			push @{ $why{ $f[2] } }, $f[1];
		}
	}
	my @reasons = map { scalar(@{ $why{$_} }) . " $_" } sort keys %why;
	printf "%d blocks checked, %d skipped%s\n", $t{checked} // 0, $t{skipped} // 0,
		@reasons ? ' (' . join('; ', @reasons) . ')' : '';
	print "failed pages: @fail\n" if @fail;
	return @fail ? 1 : 0;
}

my ($cmd, $arg) = @ARGV;
die "usage: doccheck.pl conf|run PAGE, doccheck.pl summary FILE\n" unless $cmd && $arg;
if ($cmd eq 'conf') {
	print "$_\n" for @BASE_CONF, conf_of($arg, {});
} elsif ($cmd eq 'run') {
	exit run_page($arg);
} elsif ($cmd eq 'summary') {
	exit summary($arg);
} else {
	die "doccheck.pl: unknown command '$cmd'\n";
}
