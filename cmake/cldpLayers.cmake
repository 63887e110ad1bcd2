# cldpLayers.cmake — the rooms of runtime/ and what each may include, read from the one place they
# are written: the ```layering block of docs/architecture.md (tests/test_layering.py reads the
# same block). Each source file of the library gets the include directories of its own folder
# and of the folders below it, and nothing else, so an upward include fails to compile.
#
# cldp_layering_read(): sets CLDP_LAYERS (the folders, in order) and CLDP_LAYER_DEPS_<folder>.
# cldp_layering_apply(target): gives each runtime/<folder>/*.c source of `target` its directories
#   (a runtime/*.c file, above every room, gets them all).

function(cldp_layering_read)
  file(STRINGS "${PROJECT_SOURCE_DIR}/docs/architecture.md" lines)
  set(inside OFF)
  set(layers)
  foreach(line IN LISTS lines)
    if(line MATCHES "^```layering")
      set(inside ON)
    elseif(inside AND line MATCHES "^```")
      set(inside OFF)
    elseif(inside AND line MATCHES "^([a-z]+):(.*)$")
      set(folder ${CMAKE_MATCH_1})
      string(STRIP "${CMAKE_MATCH_2}" deps)
      separate_arguments(deps UNIX_COMMAND "${deps}")
      list(APPEND layers ${folder})
      set(CLDP_LAYER_DEPS_${folder} ${deps} PARENT_SCOPE)
    endif()
  endforeach()
  if(NOT layers)
    message(FATAL_ERROR "docs/architecture.md has no ```layering block: the rooms of runtime/ are read from it")
  endif()
  set(CLDP_LAYERS ${layers} PARENT_SCOPE)
endfunction()

function(cldp_layering_apply target)
  get_target_property(sources ${target} SOURCES)
  foreach(src IN LISTS sources)
    if(NOT src MATCHES "^runtime/(.*)$")
      continue()
    endif()
    set(rest ${CMAKE_MATCH_1})
    if(rest MATCHES "^([a-z]+)/")
      set(folder ${CMAKE_MATCH_1})
      if(NOT folder IN_LIST CLDP_LAYERS)
        message(FATAL_ERROR "${src}: folder runtime/${folder} is not a room of docs/architecture.md's layering block")
      endif()
      set(dirs ${folder} ${CLDP_LAYER_DEPS_${folder}})
    else()
      set(dirs ${CLDP_LAYERS}) # runtime/*.c: above every room
    endif()
    set(paths)
    foreach(d IN LISTS dirs)
      list(APPEND paths "${PROJECT_SOURCE_DIR}/runtime/${d}")
    endforeach()
    set_source_files_properties(${src} TARGET_DIRECTORY ${target} PROPERTIES INCLUDE_DIRECTORIES "${paths}")
  endforeach()
endfunction()
