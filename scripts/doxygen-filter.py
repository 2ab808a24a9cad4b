#!/usr/bin/env python3
"""Doxygen INPUT_FILTER for ringloop's headers (scripts/docs).

The headers document their names with plain `//` comments, which Doxygen ignores. Rather than
rewrite every comment as `///`, this filter does it on the fly where a comment documents
something: a block of whole-line `//` comments at namespace or class scope (not inside a
function body, where comments explain code) becomes `///`, so Doxygen attaches it to the
declaration that follows, and a comment after a member on its line (`int x_;  // why`) becomes
`///<`. An overload declared right after a documented function of the same name, with no
comment of its own, is marked `\\overload` (the headers document an overload set once). The
comment that opens a file (its concept) becomes the file's description. Line numbers are
kept, so Doxygen's warnings point at the real lines.
"""
import re
import sys

SCOPE_KEYWORD = re.compile(r"\b(namespace|class|struct|union|enum)\b")
FUNCTION_NAME = re.compile(r"(~?\w+|operator\s*\S+?)\s*\(")


def code_of(line):
    """The line without string and character literals, and without its // comment."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])*'", "''", line)
    at = line.find("//")
    return (line if at < 0 else line[:at]), at


def main(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out = []
    scopes = []  # one entry per open brace: True for a namespace or class, False for a body
    statement = ""  # the code since the last ; { or }, which a { opens
    head = True  # still in the file's opening comment
    # The declaration being read (at scope): where it starts in out, whether a comment documents
    # it, its function name once seen; and the one before it, for \overload.
    start, documented, name = None, False, None
    previous = (None, False)  # (name, documented) of the declaration just before, if adjacent
    for number, line in enumerate(lines):
        stripped = line.strip()
        at_scope = all(scopes)
        if head and stripped.startswith("//"):
            out.append("/// " + stripped[2:].lstrip("/").strip())
            continue
        if head:
            # A \file command (which takes a line of its own) on the last line of the opening
            # comment, at its end, where it has no file name to take: "this file".
            if out:
                out[-1] += " \\file"
            head = False
        if stripped.startswith("//"):
            out.append(line.replace("//", "///", 1) if at_scope and not stripped.startswith("///")
                       else line)
            continue
        code, comment_at = code_of(line)
        if stripped.startswith("#") or not stripped:
            statement = ""
            if not stripped:
                previous = (None, False)
            out.append(line)
            continue
        overload = None
        if at_scope and not statement.strip():
            start, name = len(out), None
            documented = bool(out) and out[-1].lstrip().startswith("///")
        if at_scope and start is not None and name is None:
            found = FUNCTION_NAME.search(code)
            before = statement + code[:found.start()] if found else ""
            if found and not SCOPE_KEYWORD.search(before) and "=" not in before:
                name = found.group(1)
                if not documented and previous == (name, True):
                    overload = start  # where the declaration's first line is (or will be)
                    documented = True
        if comment_at > 0 and at_scope and code.rstrip().endswith(";") and "///" not in line:
            line = line[:comment_at] + "///<" + line[comment_at + 2:]
        for ch in code:
            if ch == "{":
                scopes.append(at_scope and bool(SCOPE_KEYWORD.search(statement))
                              and "(" not in statement)
                at_scope = all(scopes)
                statement = ""
            elif ch == "}":
                if scopes:
                    scopes.pop()
                at_scope = all(scopes)
                statement = ""
                if at_scope and start is not None:
                    previous, start = (name, documented), None
            elif ch == ";":
                statement = ""
                if at_scope and start is not None:
                    previous, start = (name, documented), None
            else:
                statement += ch
        statement += " "
        if overload is not None:
            if overload < len(out):
                out[overload] = "/** \\overload */ " + out[overload]
            else:
                line = "/** \\overload */ " + line
        out.append(line)
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
