# pier_test(NAME name SRCS ... DEPS ... [LABELS ...])
# Builds a GoogleTest binary into build/tests and registers it with ctest.
# Every test carries the label "unit" unless LABELS says otherwise; the
# sanitizer job runs the "unit" label only.
function(pier_test)
  cmake_parse_arguments(T "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SRCS})
  target_link_libraries(${T_NAME} PRIVATE ${T_DEPS} pier_testing GTest::gmock_main)
  set_target_properties(${T_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                        ${CMAKE_BINARY_DIR}/tests)
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT 900)
  if("unit" IN_LIST T_LABELS)
    add_dependencies(pier_unit_tests ${T_NAME})
  endif()
endfunction()

if(NOT TARGET pier_unit_tests)
  add_custom_target(pier_unit_tests)
endif()
