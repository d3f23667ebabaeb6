/*-------------------------------------------------------------------------
 *
 * pseudonym.c
 *	  The pseudonym mask: a keyed, deterministic, format-preserving stand-in
 *	  for a value.  Under one secret the same value always gets the same
 *	  pseudonym (so pseudonymized columns stay joinable and countable), and
 *	  nobody without the secret can compute or reverse it.
 *
 * What a pseudonym looks like depends on the value (kind "auto") or on the
 * mask's "kind" argument:
 *	email	 alice@example.com -> k3v9q2mx7d1c@example.com: a pseudonymous
 *			 local part of 12 letters and digits; the domain is kept
 *			 (default) or replaced by a pseudonymous one under the reserved
 *			 top-level domain .example (RFC 2606), so a pseudonym can never
 *			 reach a real mailbox at another domain;
 *	name	 "Zoë Ångström" -> "Hanna Kowalski": every word becomes a name
 *			 from built-in lists of 128 first and 128 last names (the last
 *			 word a last name, the others first names), initials stay
 *			 initials, case (Title, UPPER, lower) and separators are kept;
 *	digits	 +1 (555) 010-0123 -> +7 (283) 041-6620: every digit becomes a
 *			 digit (the first digit of a run stays zero or non-zero),
 *			 everything else is kept; a keyed permutation (ps_permute), so
 *			 distinct values always get distinct pseudonyms;
 *	text	 AB-1234-x -> QF-8302-k: letters become letters of the same case,
 *			 digits digits, other characters of other scripts lower-case
 *			 letters, punctuation and spaces are kept.
 * Auto picks email for a valid address, digits for digits and separators
 * only, name for letters and name punctuation only, text otherwise.
 *
 * Names are drawn from 16384 combinations, so distinct names can share a
 * pseudonym: use the hash or tokenize mask for join keys that must stay
 * distinct.  Emails get 62 bits (a collision among a million addresses
 * has odds of about 1 in 10^7).  Digits, and texts in ASCII, never
 * collide (see ps_permute): their letters and digits are enciphered, not
 * drawn; a text with characters of other scripts gets fresh random letters
 * for them, and short texts of one shape can then collide.
 *
 * The bytes come from HMAC-SHA256 under the mask's secret: a seed
 * HMAC(key, "stage.pseudonym" || value), then blocks HMAC(key, seed || i).
 * Every character of the output depends on the whole value.
 *
 * Touches nothing but the key and value it is given; the result is
 * palloc'd in CurrentMemoryContext.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "format.h"
#include "pseudonym.h"
#include "sha256.h"

static const char *const pseudo_first[128] = {
	"Olivia", "Liam", "Emma", "Noah", "Ava", "Oliver", "Sophia", "Elijah",
	"Isabella", "James", "Mia", "William", "Amelia", "Benjamin", "Harper",
	"Lucas", "Evelyn", "Henry", "Abigail", "Alexander", "Emily", "Mateo",
	"Ella", "Daniel", "Elizabeth", "Michael", "Sofia", "Ethan", "Avery",
	"Jacob", "Scarlett", "Logan", "Aria", "Jackson", "Chloe", "Sebastian",
	"Layla", "Jack", "Zoe", "Aiden", "Nora", "Samuel", "Lily", "David",
	"Hannah", "Joseph", "Lucia", "Carlos", "Maria", "Jose", "Ana", "Luis",
	"Carmen", "Juan", "Elena", "Pedro", "Laura", "Diego", "Paula", "Miguel",
	"Sara", "Javier", "Marta", "Pablo", "Ines", "Hugo", "Chiara", "Luca",
	"Giulia", "Marco", "Francesca", "Matteo", "Anna", "Jonas", "Lena",
	"Felix", "Hanna", "Lukas", "Clara", "Leon", "Emilie", "Louis", "Camille",
	"Jules", "Manon", "Gabriel", "Louise", "Arthur", "Alice", "Raphael",
	"Margaux", "Mohamed", "Fatima", "Omar", "Aisha", "Ali", "Yasmin",
	"Hassan", "Mariam", "Yusuf", "Amira", "Arjun", "Priya", "Rohan",
	"Ananya", "Vikram", "Kavya", "Wei", "Mei", "Jun", "Yuki", "Hiroshi",
	"Sakura", "Kenji", "Min", "Jin", "Kwame", "Amara", "Kofi", "Ama",
	"Tunde", "Zainab", "Ivan", "Olga", "Dmitri", "Natalia", "Piotr", "Zofia"
};

static const char *const pseudo_last[128] = {
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller",
	"Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez",
	"Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
	"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
	"Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
	"Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green",
	"Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell",
	"Carter", "Roberts", "Muller", "Schmidt", "Schneider", "Fischer",
	"Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann", "Koch",
	"Richter", "Klein", "Wolf", "Rossi", "Russo", "Ferrari", "Esposito",
	"Bianchi", "Romano", "Colombo", "Ricci", "Dubois", "Durand", "Leroy",
	"Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Fernandez", "Gomez",
	"Diaz", "Moreno", "Alvarez", "Romero", "Navarro", "Silva", "Santos",
	"Oliveira", "Costa", "Pereira", "Almeida", "Ferreira", "Kowalski",
	"Nowak", "Wisniewski", "Novak", "Horvat", "Ivanov", "Petrov", "Popescu",
	"Jensen", "Hansen", "Nielsen", "Larsen", "Andersen", "Berg", "Lindqvist",
	"Virtanen", "Murphy", "Kelly", "Khan", "Ahmed", "Hussain", "Patel",
	"Sharma", "Singh", "Kumar", "Gupta", "Chen", "Wang", "Zhang", "Liu",
	"Tanaka", "Suzuki", "Kim", "Park"
};

/* a keyed byte stream for one value */
typedef struct PseudoStream
{
	const HmacKey *key;
	uint8		seed[SHA256_DIGEST];
	uint8		block[SHA256_DIGEST];
	int			pos;			/* next unused byte of block */
	uint32		counter;
} PseudoStream;

/* start the byte stream of value s under key: seed HMAC(key, label || s) */
static void
ps_init(PseudoStream *st, const HmacKey *key, const char *s, int len)
{
	static const char label[] = "stage.pseudonym";

	st->key = key;
	hmac_sha256_2(key, (const uint8 *) label, sizeof(label), (const uint8 *) s, len,
				  st->seed);
	st->pos = SHA256_DIGEST;
	st->counter = 0;
}

/* the next byte of the stream: blocks HMAC(key, seed || counter) */
static uint8
ps_byte(PseudoStream *st)
{
	if (st->pos >= SHA256_DIGEST)
	{
		uint8		ctr[4];

		ctr[0] = st->counter >> 24;
		ctr[1] = st->counter >> 16;
		ctr[2] = st->counter >> 8;
		ctr[3] = st->counter;
		st->counter++;
		hmac_sha256_2(st->key, st->seed, SHA256_DIGEST, ctr, 4, st->block);
		st->pos = 0;
	}
	return st->block[st->pos++];
}

/* uniform in [0, n), n <= 256, without modulo bias */
static int
ps_uniform(PseudoStream *st, int n)
{
	int			limit = 256 - (256 % n);

	for (;;)
	{
		int			b = ps_byte(st);

		if (b < limit)
			return b % n;
	}
}

static const char ps_lower[] = "abcdefghijklmnopqrstuvwxyz";
static const char ps_upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
static const char ps_alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";

/* n letters and digits, the first a letter */
static void
ps_label(PseudoStream *st, StringInfo out, int n)
{
	int			i;

	appendStringInfoChar(out, ps_lower[ps_uniform(st, 26)]);
	for (i = 1; i < n; i++)
		appendStringInfoChar(out, ps_alnum[ps_uniform(st, 36)]);
}

static inline bool
ps_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* an ASCII letter, or any byte of a multibyte character */
static inline bool
ps_is_letter(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

/* separators between the words of a name */
static inline bool
ps_name_sep(unsigned char c)
{
	return c == ' ' || c == ',' || c == '\t';
}

/* the kind auto picks for s: email, digits, name or text (see above) */
static PseudoKind
ps_classify(const char *s, int len)
{
	int			i;
	bool		letters = false;
	bool		digits = false;
	bool		name_only = true;
	bool		digits_only = true;

	if (email_valid(s, len))
		return PSEUDO_EMAIL;
	for (i = 0; i < len; i++)
	{
		unsigned char c = s[i];

		if (ps_is_digit(c))
		{
			digits = true;
			name_only = false;
		}
		else if (ps_is_letter(c))
		{
			letters = true;
			digits_only = false;
		}
		else
		{
			if (!strchr(" +-().,/", c) || c == '\0')
				digits_only = false;
			if (!(ps_name_sep(c) || c == '-' || c == '\'' || c == '.'))
				name_only = false;
		}
	}
	if (digits && digits_only)
		return PSEUDO_DIGITS;
	if (letters && name_only)
		return PSEUDO_NAME;
	return PSEUDO_TEXT;
}

/* letters become letters, digits digits, the rest stays */
static void
ps_text(PseudoStream *st, const char *s, int len, StringInfo out)
{
	int			i = 0;

	while (i < len)
	{
		unsigned char c = s[i];

		if (c >= 'a' && c <= 'z')
			appendStringInfoChar(out, ps_lower[ps_uniform(st, 26)]);
		else if (c >= 'A' && c <= 'Z')
			appendStringInfoChar(out, ps_upper[ps_uniform(st, 26)]);
		else if (ps_is_digit(c))
			appendStringInfoChar(out, '0' + ps_uniform(st, 10));
		else if (c >= 0x80)
		{
			/* a character of another script: one letter for it, whole */
			appendStringInfoChar(out, ps_lower[ps_uniform(st, 26)]);
			i += pg_mblen(s + i);
			continue;
		}
		else
			appendStringInfoChar(out, c);
		i++;
	}
}

/*
 * digits (and ASCII text): a keyed permutation.  The digits of the value are one
 * mixed-radix number: the first digit of a run of digits keeps being zero
 * or not (radix 9 for 1..9, or fixed at 0), every other digit has radix
 * 10.  That number is enciphered with a Feistel network: its digits split
 * in two halves A and B, ten rounds alternately add to A (or B), digit by
 * digit with carry modulo the half's size, a keyed function of the other
 * half.  Each round is undone by subtracting the same amount, so the whole
 * is a permutation of the numbers of that layout: two values of one layout
 * never share a pseudonym.  Everything that is not a digit stays where it
 * is, so values of different layouts cannot share one either.  The
 * layout itself (where digits and separators are, which runs start with
 * 0) keys the rounds, so each layout gets its own permutation.
 */
#define PS_DIGIT_ROUNDS 10

typedef struct PsDigits
{
	int			n;				/* digits in the value */
	int		   *pos;			/* their byte positions */
	uint8	   *radix;			/* 1, 9 or 10 */
	uint8	   *v;				/* the value, digit by digit, in [0, radix) */
	char	   *layout;			/* the value with digits as 'd', '0' or '9',
								 * letters as 'a' or 'A' */
	int			len;
} PsDigits;

/* add a keyed function of half [ob, oe) to half [tb, te), mod the half's size */
static void
ps_digits_round(const HmacKey *key, PsDigits *d, int round, int tb, int te,
				int ob, int oe)
{
	StringInfoData in;
	PseudoStream st;
	int			carry = 0;
	int			i;

	if (tb >= te)
		return;
	/* "digits" and a NUL: no text value hashes the same */
	initStringInfo(&in);
	appendBinaryStringInfo(&in, "digits", 7);
	appendStringInfoChar(&in, (char) ('a' + round));
	appendBinaryStringInfo(&in, d->layout, d->len);
	appendStringInfoChar(&in, '\0');
	for (i = ob; i < oe; i++)
		appendStringInfoChar(&in, (char) ('0' + d->v[i]));
	ps_init(&st, key, in.data, in.len);
	/* least significant digit last: add from the end, carrying */
	for (i = te - 1; i >= tb; i--)
	{
		int			add = d->radix[i] > 1 ? ps_uniform(&st, d->radix[i]) : 0;
		int			sum = d->v[i] + add + carry;

		CHECK_FOR_INTERRUPTS();
		d->v[i] = sum % d->radix[i];
		carry = sum / d->radix[i];
	}
	explicit_bzero(&st, sizeof(st));
	pfree(in.data);
}

/* the keyed permutation of digits (and ASCII letters) of s, described above */
static void
ps_permute(const HmacKey *key, const char *s, int len, bool letters, StringInfo out)
{
	PsDigits	d;
	int			i;
	int			k;
	int			half;
	int			r;
	char	   *o;

	d.len = len;
	d.layout = palloc(len + 1);
	d.pos = palloc(sizeof(int) * Max(len, 1));
	d.radix = palloc(Max(len, 1));
	d.v = palloc(Max(len, 1));
	d.n = 0;
	for (i = 0; i < len; i++)
	{
		unsigned char c = s[i];
		bool		run_start = (i == 0 || !ps_is_digit(s[i - 1]));

		CHECK_FOR_INTERRUPTS();
		if (letters && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
		{
			/* a letter stays a letter of its case */
			d.pos[d.n] = i;
			d.radix[d.n] = 26;
			d.v[d.n] = (c >= 'a') ? c - 'a' : c - 'A';
			d.layout[i] = (c >= 'a') ? 'a' : 'A';
			d.n++;
			continue;
		}
		if (!ps_is_digit(c))
		{
			d.layout[i] = c;
			continue;
		}
		d.pos[d.n] = i;
		if (run_start && c == '0')
		{
			d.radix[d.n] = 1;
			d.v[d.n] = 0;
			d.layout[i] = '0';
		}
		else if (run_start)
		{
			d.radix[d.n] = 9;
			d.v[d.n] = c - '1';
			d.layout[i] = '9';
		}
		else
		{
			d.radix[d.n] = 10;
			d.v[d.n] = c - '0';
			d.layout[i] = 'd';
		}
		d.n++;
	}
	d.layout[len] = '\0';

	half = d.n / 2 > 0 ? d.n / 2 : d.n;
	for (r = 0; r < PS_DIGIT_ROUNDS; r++)
	{
		if (r % 2 == 0)
			ps_digits_round(key, &d, r, 0, half, half, d.n);
		else
			ps_digits_round(key, &d, r, half, d.n, 0, half);
	}

	enlargeStringInfo(out, len);
	o = out->data + out->len;
	memcpy(o, s, len);
	for (k = 0; k < d.n; k++)
	{
		if (d.radix[k] == 26)
			o[d.pos[k]] = (char) ((d.layout[d.pos[k]] == 'a' ? 'a' : 'A') + d.v[k]);
		else
			o[d.pos[k]] = (char) (d.radix[k] == 9 ? '1' + d.v[k] : '0' + d.v[k]);
	}
	out->len += len;
	out->data[out->len] = '\0';
	explicit_bzero(d.v, Max(len, 1));
}

/*
 * Append name in the case of the word it replaces: UPPER for a word of
 * upper-case ASCII letters, lower for one starting with a lower-case ASCII
 * letter, as written (Title) otherwise, e.g. for words starting with a
 * letter of another script.
 */
static void
ps_cased(StringInfo out, const char *name, const char *word, int wlen)
{
	bool		any_lower = false;
	bool		any_upper = false;
	bool		upper;
	bool		lower;
	int			i;

	for (i = 0; i < wlen; i++)
	{
		unsigned char c = word[i];

		if (c >= 'a' && c <= 'z')
			any_lower = true;
		else if (c >= 'A' && c <= 'Z')
			any_upper = true;
	}
	upper = wlen > 1 && word[0] >= 'A' && word[0] <= 'Z' && !any_lower;
	lower = word[0] >= 'a' && word[0] <= 'z' && !any_upper;
	for (i = 0; name[i]; i++)
	{
		char		c = name[i];

		if (upper && c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
		else if (lower && c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		appendStringInfoChar(out, c);
	}
}

/* every word a name: the last one a last name, initials initials */
static void
ps_name(PseudoStream *st, const char *s, int len, StringInfo out)
{
	int			nwords = 0;
	int			w = 0;
	int			i;

	for (i = 0; i < len; i++)
		if (!ps_name_sep(s[i]) && (i == 0 || ps_name_sep(s[i - 1])))
			nwords++;
	i = 0;
	while (i < len)
	{
		int			start;
		int			chars;

		if (ps_name_sep(s[i]))
		{
			appendStringInfoChar(out, s[i++]);
			continue;
		}
		start = i;
		while (i < len && !ps_name_sep(s[i]))
			i++;
		w++;
		chars = pg_mbstrlen_with_len(s + start, i - start);
		if (chars == 1 || (chars == 2 && s[i - 1] == '.'))
		{
			/* an initial: J. -> K. */
			appendStringInfoChar(out, ps_upper[ps_uniform(st, 26)]);
			if (s[i - 1] == '.')
				appendStringInfoChar(out, '.');
		}
		else if (w == nwords && nwords > 1)
			ps_cased(out, pseudo_last[ps_uniform(st, 128)], s + start, i - start);
		else
			ps_cased(out, pseudo_first[ps_uniform(st, 128)], s + start, i - start);
	}
}

/* local@domain: a pseudonymous local part; the domain kept or replaced */
static void
ps_email(PseudoStream *st, const char *s, int len, bool keep_domain, StringInfo out)
{
	const char *at = s + len - 1;
	int			domain_len;

	while (*at != '@')
		at--;
	domain_len = len - (at + 1 - s);

	/*
	 * 12 characters, fewer when a kept long domain would make the result
	 * longer than an address may be (254): a pseudonym of a valid address
	 * is a valid address.
	 */
	ps_label(st, out, keep_domain ? Min(12, 253 - domain_len) : 12);
	appendStringInfoChar(out, '@');
	if (keep_domain)
		appendBinaryStringInfo(out, at + 1, len - (at + 1 - s));
	else
	{
		ps_label(st, out, 8);
		appendStringInfoString(out, ".example");
	}
}

/* the pseudonym of s[0..len) under key, as a palloc'd string */
char *
mask_pseudonym(const HmacKey *key, const char *s, int len, PseudoKind kind,
			   bool keep_domain)
{
	PseudoStream st;
	StringInfoData out;

	ps_init(&st, key, s, len);
	initStringInfo(&out);
	if (kind == PSEUDO_AUTO)
		kind = ps_classify(s, len);
	else if (kind == PSEUDO_EMAIL && !email_valid(s, len))
		kind = PSEUDO_TEXT;		/* not an address: keep its shape at least */
	switch (kind)
	{
		case PSEUDO_EMAIL:
			ps_email(&st, s, len, keep_domain, &out);
			break;
		case PSEUDO_NAME:
			ps_name(&st, s, len, &out);
			break;
		case PSEUDO_DIGITS:
			ps_permute(key, s, len, false, &out);
			break;
		case PSEUDO_TEXT:
		case PSEUDO_AUTO:
			/* ASCII text: a permutation too; other scripts map to letters */
			if (pg_mbstrlen_with_len(s, len) == len)
				ps_permute(key, s, len, true, &out);
			else
				ps_text(&st, s, len, &out);
			break;
	}
	explicit_bzero(&st, sizeof(st));
	return out.data;
}
