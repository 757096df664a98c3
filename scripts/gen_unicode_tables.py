#!/usr/bin/env python3
"""Generates core/unicode_tables.inc: the code point tables behind mlawb::unicode's
character classes (is_letter / is_number / is_whitespace) and its NFC normalization
(combining classes, canonical decompositions, canonical compositions).

The committed tables were produced by CPython 3.11's `unicodedata`, i.e. Unicode 14.0.0
(the script writes the version it used into the header of the generated file; rerun it
with a newer Python to move to a newer Unicode version). Hugging Face tokenizers' regex
engine (Oniguruma via the `onig` crate) and its NFC (the `unicode-normalization` crate)
ship somewhat newer Unicode databases; the difference is a few hundred recently assigned
characters in rare scripts, none of which appear in our fixtures or references.

Usage: python3 scripts/gen_unicode_tables.py > core/unicode_tables.inc
"""

import sys
import unicodedata

MAX_CODE_POINT = 0x10FFFF
# Hangul syllables decompose and compose algorithmically (Unicode 3.12); unicode.cpp does that
# in code, so they are left out of the tables.
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3

# \p{L} and \p{N} as the GPT-2 pre-tokenizer regex uses them (general categories).
LETTER_CATEGORIES = {"Lu", "Ll", "Lt", "Lm", "Lo"}
NUMBER_CATEGORIES = {"Nd", "Nl", "No"}


def is_white_space(cp: int) -> bool:
    # The Unicode White_Space property (PropList.txt), which is what Oniguruma's and Rust
    # regex's \s match. `unicodedata` does not expose it, and str.isspace() is broader
    # (it also accepts U+001C..U+001F), so build it from its definition: the space,
    # line and paragraph separators (Zs, Zl, Zp) plus the controls TAB, LF, VT, FF, CR
    # and NEL. This equals PropList's list for every Unicode version since 6.3.
    if 0x09 <= cp <= 0x0D or cp == 0x85:
        return True
    return unicodedata.category(chr(cp)) in {"Zs", "Zl", "Zp"}


def ranges(predicate):
    """Sorted, merged, inclusive [first, last] ranges of code points matching predicate."""
    out = []
    start = None
    for cp in range(MAX_CODE_POINT + 2):
        inside = cp <= MAX_CODE_POINT and predicate(cp)
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            out.append((start, cp - 1))
            start = None
    return out


def valued_ranges(value_of):
    """Sorted inclusive (first, last, value) runs of equal non-zero value_of(cp)."""
    out = []
    for cp in range(MAX_CODE_POINT + 1):
        value = value_of(cp)
        if value == 0:
            continue
        if out and out[-1][1] == cp - 1 and out[-1][2] == value:
            out[-1] = (out[-1][0], cp, value)
        else:
            out.append((cp, cp, value))
    return out


def canonical_decompositions():
    """(code point, first, second) for every character with a canonical decomposition
    mapping in UnicodeData.txt (one or two code points; second is 0 for singletons).
    The mappings are one step; NFD applies them recursively."""
    out = []
    for cp in range(MAX_CODE_POINT + 1):
        if HANGUL_FIRST <= cp <= HANGUL_LAST:
            continue
        mapping = unicodedata.decomposition(chr(cp))
        if not mapping or mapping.startswith("<"):  # "<compat> ..." etc. are compatibility mappings
            continue
        parts = [int(p, 16) for p in mapping.split()]
        if len(parts) > 2:
            raise SystemExit(f"U+{cp:04X}: canonical mapping of {len(parts)} code points")
        out.append((cp, parts[0], parts[1] if len(parts) == 2 else 0))
    return out


def primary_composites(decompositions):
    """(first, second, composite) for the canonical pairs NFC recomposes: two-code-point
    mappings of characters that are not composition exclusions. A character is excluded
    exactly when NFC does not give it back (Full_Composition_Exclusion: the exclusion list,
    singletons and non-starter decompositions), which unicodedata lets us test directly."""
    out = []
    for cp, first, second in decompositions:
        if second and unicodedata.normalize("NFC", chr(cp)) == chr(cp):
            out.append((first, second, cp))
    return sorted(out)


def emit(name, struct, rows, comment, per_line):
    lines = [f"// {comment} ({len(rows)} entries)", f"constexpr {struct} {name}[] = {{"]
    row = []
    for entry in rows:
        row.append("{" + ", ".join(f"0x{v:X}" if i < 2 or struct != "CombiningClassRange" else str(v)
                                   for i, v in enumerate(entry)) + "}")
        if len(row) == per_line:
            lines.append("    " + ", ".join(row) + ",")
            row = []
    if row:
        lines.append("    " + ", ".join(row) + ",")
    lines.append("};")
    return "\n".join(lines)


def main():
    category = unicodedata.category
    letters = ranges(lambda cp: category(chr(cp)) in LETTER_CATEGORIES)
    numbers = ranges(lambda cp: category(chr(cp)) in NUMBER_CATEGORIES)
    spaces = ranges(is_white_space)
    combining = valued_ranges(lambda cp: unicodedata.combining(chr(cp)))
    decompositions = canonical_decompositions()
    compositions = primary_composites(decompositions)
    parts = [
        "// Generated by scripts/gen_unicode_tables.py -- do not edit by hand.",
        f"// Unicode version {unicodedata.unidata_version} "
        f"(Python {sys.version_info.major}.{sys.version_info.minor} unicodedata).",
        "// Included by core/unicode.cpp inside namespace mlawb::unicode::{anonymous}.",
        "",
        f'constexpr const char* kTablesUnicodeVersion = "{unicodedata.unidata_version}";',
        "",
        emit("kLetterRanges", "CodePointRange", letters, "\\p{L}: general categories Lu Ll Lt Lm Lo", 6),
        "",
        emit("kNumberRanges", "CodePointRange", numbers, "\\p{N}: general categories Nd Nl No", 6),
        "",
        emit("kWhiteSpaceRanges", "CodePointRange", spaces, "White_Space property (what \\s matches)", 6),
        "",
        emit("kCombiningClassRanges", "CombiningClassRange", combining,
             "Canonical_Combining_Class != 0 as {first, last, class}, sorted", 5),
        "",
        emit("kCanonicalDecompositions", "CanonicalDecomposition", decompositions,
             "canonical decomposition mappings {code point, first, second or 0}, sorted, Hangul excluded", 5),
        "",
        emit("kCanonicalCompositions", "CanonicalComposition", compositions,
             "primary composites {first, second, composite}, sorted by (first, second)", 5),
        "",
    ]
    sys.stdout.write("\n".join(parts))


if __name__ == "__main__":
    main()
