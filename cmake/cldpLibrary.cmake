# cldpLibrary.cmake — the two libraries made from cldp_objects: libcldp.so.<version> with the
# SONAME libcldp.so.0, and libcldp.a; the aliases cldp (in this build) and cldp::cldp (as an
# installed package spells it), both the kind BUILD_SHARED_LIBS picks. Included by CMakeLists.txt
# after the object library and its optional parts (MPI), which fill CLDP_PUBLIC_LIBS and
# CLDP_PUBLIC_DEFINITIONS.
include(GNUInstallDirs)

foreach(kind shared static)
  string(TOUPPER ${kind} KIND)
  add_library(cldp_${kind} ${KIND} $<TARGET_OBJECTS:cldp_objects>)
  target_include_directories(cldp_${kind} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
                                                 $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(cldp_${kind} PUBLIC ${CLDP_PUBLIC_LIBS} PRIVATE ${CLDP_PRIVATE_LIBS})
  target_compile_definitions(cldp_${kind} PUBLIC ${CLDP_PUBLIC_DEFINITIONS})
  set_target_properties(cldp_${kind} PROPERTIES OUTPUT_NAME cldp)
endforeach()
# SONAME libcldp.so.<major>: the major version changes when the ABI breaks (append-only enums,
# struct_size-versioned options keep it within one)
set_target_properties(cldp_shared PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
                                             EXPORT_NAME cldp C_VISIBILITY_PRESET hidden)
set_target_properties(cldp_static PROPERTIES EXPORT_NAME cldp_static)
# with -Wl,--no-undefined a missing symbol in the shared library fails its link, not its users'
if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang" AND NOT CLDP_SANITIZE AND NOT APPLE)
  target_link_options(cldp_shared PRIVATE -Wl,--no-undefined)
endif()

# An installed package's cldp::cldp is the shared library (cldp::cldp_static the archive); in a
# build tree, a parent's add_subdirectory included, cldp and cldp::cldp follow BUILD_SHARED_LIBS.
if(BUILD_SHARED_LIBS)
  add_library(cldp ALIAS cldp_shared)
  add_library(cldp::cldp ALIAS cldp_shared)
else()
  add_library(cldp ALIAS cldp_static)
  add_library(cldp::cldp ALIAS cldp_static)
endif()
add_library(cldp::cldp_static ALIAS cldp_static)
