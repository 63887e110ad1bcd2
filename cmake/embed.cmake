# Turns one file into a C source defining a byte array and its length.
# Run as: cmake -DIN=<file> -DOUT=<file.c> -DNAME=<symbol> -P embed.cmake
# Text (cl/*.cl) and binary data (gzipped datasets) take the same path; the array is
# NUL-terminated so kernel sources can be handed to clCreateProgramWithSource directly.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR nbytes "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
# Break the one long line every 32 bytes so compilers and diffs stay comfortable.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){32})" "\\1\n" body "${body}")
get_filename_component(base "${IN}" NAME)
file(WRITE "${OUT}"
  "/* Generated from ${base} by cmake/embed.cmake; do not edit. */\n"
  "#include <stddef.h>\n"
  "const unsigned char ${NAME}[] = {\n${body}0x00};\n"
  "const size_t ${NAME}_len = ${nbytes};\n")
