# cmake/layers.cmake: a folder is a layer (style.md §2). subbit_layer(NAME
# DEPS ... LIBS ...) makes the object library NAME of the folder's sources
# (they all go into libsubbit) and NAME_layer, a shared library of just those
# objects linked with -Wl,--no-undefined against the layers of DEPS and the
# libraries LIBS, nothing else: a call into a folder the table does not allow,
# or into a library the folder may not use, fails to link. The check libraries
# are build products only; nothing installs or links them.
function(subbit_layer name)
  cmake_parse_arguments(L "" "" "DEPS;LIBS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  add_library(${name} OBJECT ${srcs})
  target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR} ${SUBBIT_INCLUDE})
  target_link_libraries(${name} PUBLIC ${L_DEPS} PRIVATE ${L_LIBS})
  add_library(${name}_layer SHARED $<TARGET_OBJECTS:${name}>)
  foreach(d ${L_DEPS})
    target_link_libraries(${name}_layer PRIVATE ${d}_layer)
  endforeach()
  target_link_libraries(${name}_layer PRIVATE ${L_LIBS})
  if(NOT SUBBIT_SANITIZE AND NOT SUBBIT_FUZZ)   # the sanitizer runtime is the executable's
    target_link_options(${name}_layer PRIVATE -Wl,--no-undefined)
  endif()
endfunction()
