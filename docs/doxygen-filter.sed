# doxygen-filter.sed — how Doxygen reads cldp's public headers (the INPUT_FILTER of
# docs/Doxyfile.in): the headers keep plain C comments, and each one documents what it stands by.
#   the header's opening comment            -> the file's own documentation (@file)
#   /* ---- section ---- */ on one line     -> stays a plain comment (a rule between sections)
#   /* ---- section ----  opening a block   -> documentation of what follows, titled by the section
#   /* comment */ on a line of its own      -> documentation of what follows (/**)
#   code; /* comment */ after code          -> documentation of that code (/**<)
# Lines are neither added nor removed, so warnings point at the header's own lines.
1{
  s#^/\* \([a-z_]*\.h\) — #/** @file \1 #
  t
}
\#^[[:space:]]*/\* --*.*-- \*/[[:space:]]*$#b
s#^\([[:space:]]*\)/\* --* \(.*[^ -]\) *-*$#\1/** \2.#
t
s#^\([[:space:]]*\)/\*\( \|$\)#\1/**\2#
t
s#\([^[:space:]][^/]*\)[[:space:]]\{1,\}/\* #\1 /**< #
