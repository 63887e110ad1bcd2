# cldpDocs.cmake — the `docs` target: the API reference from include/*.h and the pages of docs/
# through Doxygen (Debian: doxygen) into <build>/docs/html; without Doxygen the target says so
# and fails. test_docs (tests/CMakeLists.txt) runs the same Doxyfile and fails on any warning.
find_program(CLDP_DOXYGEN NAMES doxygen)
set(CLDP_DOCS_OUT ${PROJECT_BINARY_DIR}/docs)
file(GLOB CLDP_DOCS_PAGES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
set(CLDP_DOCS_INPUT ${PROJECT_SOURCE_DIR}/include/cldp.h)
if(CLDP_WITH_MPI)
  list(APPEND CLDP_DOCS_INPUT ${PROJECT_SOURCE_DIR}/include/cldp_mpi.h)
endif()
list(APPEND CLDP_DOCS_INPUT ${CLDP_DOCS_PAGES})
string(REPLACE ";" " " CLDP_DOCS_INPUT "${CLDP_DOCS_INPUT}")
configure_file(${PROJECT_SOURCE_DIR}/docs/Doxyfile.in ${CLDP_DOCS_OUT}/Doxyfile @ONLY)
if(CLDP_DOXYGEN)
  add_custom_target(docs
    COMMAND ${CMAKE_COMMAND} -E remove -f ${CLDP_DOCS_OUT}/warnings.log
    COMMAND ${CLDP_DOXYGEN} ${CLDP_DOCS_OUT}/Doxyfile
    COMMAND ${CMAKE_COMMAND} -E echo "cldp: the API reference is ${CLDP_DOCS_OUT}/html/index.html (warnings: ${CLDP_DOCS_OUT}/warnings.log)"
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} VERBATIM)
  message(STATUS "cldp: docs     ${CLDP_DOXYGEN} (cmake --build <build> --target docs)")
else()
  add_custom_target(docs
    COMMAND ${CMAKE_COMMAND} -E echo "cldp: the docs target needs Doxygen, which was not found: install it (Debian: apt-get install doxygen) and configure again"
    COMMAND ${CMAKE_COMMAND} -E false VERBATIM)
  message(STATUS "cldp: docs     off: no doxygen (Debian: doxygen)")
endif()
