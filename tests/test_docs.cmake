# test_docs.cmake — the API reference builds from the headers and docs/ with no Doxygen warning
# (an undocumented function, field or enum value, a malformed comment, a broken page link).
# Run by ctest as: cmake -DDOXYGEN=... -DDOXYFILE=... -DSOURCE=... -DLOG=... -P this.
if(NOT DOXYGEN)
  message("SKIP test_docs: doxygen is not installed (Debian: doxygen), so the reference is not checked")
  return()
endif()
file(REMOVE "${LOG}")
execute_process(COMMAND "${DOXYGEN}" "${DOXYFILE}" WORKING_DIRECTORY "${SOURCE}" RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "FAIL doxygen exited ${rc}:\n${out}\n${err}")
endif()
file(READ "${LOG}" warnings)
if(warnings)
  message(FATAL_ERROR "FAIL Doxygen warns about the public headers or docs/ (fix the comments):\n${warnings}")
endif()
message("test_docs: the reference built without a warning")
