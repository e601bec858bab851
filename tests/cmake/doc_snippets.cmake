# sluice_doc_snippets(<out_dir> <markdown files...>): writes every ```cpp fenced block of the
# given Markdown files into a translation unit under <out_dir> and returns their paths in
# SLUICE_DOC_SNIPPET_TUS. A block whose first line is
#   // snippet: fragment   is wrapped in a function, after tests/docs/doc_snippet_prelude.hpp
#                          (which declares the names the docs use without declaring them);
#   // snippet: skip ...   is not compiled (say why on that line; keep these rare);
# any other block is compiled as it is: a whole program or file. A #line directive points
# compiler errors at the Markdown file and line. Configure-time, and the Markdown files are
# configure dependencies, so editing a snippet re-extracts it.
function(sluice_doc_snippets out_dir)
  set(tus "")
  file(REMOVE_RECURSE ${out_dir})
  foreach(md IN LISTS ARGN)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${md})
    file(READ ${md} text)
    cmake_path(RELATIVE_PATH md BASE_DIRECTORY ${PROJECT_SOURCE_DIR} OUTPUT_VARIABLE relative)
    string(MAKE_C_IDENTIFIER "${relative}" id)  # docs_guide_md
    # A C++ snippet outside a ```cpp fence would silently escape compilation.
    if(text MATCHES "(^|\n)(    |\t)[^\n]*(#include <sluice/|sluice::from\\()")
      message(FATAL_ERROR "${md}: an indented C++ snippet; put it in a ```cpp fence so the "
                          "test suite compiles it")
    endif()
    if(text MATCHES "(^|\n)```(c\\+\\+|C\\+\\+|cxx|cc|hpp)\n")
      message(FATAL_ERROR "${md}: write C++ fences as ```cpp so the test suite compiles them")
    endif()
    set(rest "${text}")
    set(offset_lines 0)
    set(index 0)
    while(TRUE)
      string(FIND "${rest}" "```cpp\n" open)
      if(open EQUAL -1)
        break()
      endif()
      string(SUBSTRING "${rest}" 0 ${open} before)
      string(REGEX MATCHALL "\n" newlines "${before}")
      list(LENGTH newlines n)
      math(EXPR first_line "${offset_lines} + ${n} + 2")  # the line after the fence
      math(EXPR body_start "${open} + 7")
      string(SUBSTRING "${rest}" ${body_start} -1 rest)
      string(FIND "${rest}" "\n```" close)
      if(close EQUAL -1)
        message(FATAL_ERROR "${md}:${first_line}: a ```cpp fence is not closed")
      endif()
      string(SUBSTRING "${rest}" 0 ${close} body)
      string(REGEX MATCHALL "\n" newlines "${body}")
      list(LENGTH newlines n)
      math(EXPR offset_lines "${first_line} + ${n}")  # lines before the closing fence
      math(EXPR after "${close} + 4")
      string(SUBSTRING "${rest}" ${after} -1 rest)
      math(EXPR index "${index} + 1")

      set(tu ${out_dir}/${id}_${index}.cpp)
      if(body MATCHES "^// snippet: skip")
        continue()
      elseif(body MATCHES "^// snippet: fragment")
        # Its leading #include lines stay at file scope; the rest becomes a function body.
        string(REGEX MATCH "^// snippet: fragment[^\n]*\n((#include [^\n]*\n|\n)*)" head "${body}")
        string(LENGTH "${head}" head_length)
        string(SUBSTRING "${body}" ${head_length} -1 statements)
        string(REGEX MATCHALL "\n" newlines "${head}")
        list(LENGTH newlines n)
        math(EXPR statements_line "${first_line} + ${n}")
        file(WRITE ${tu} "#include \"doc_snippet_prelude.hpp\"\n#line ${first_line} \"${md}\"\n"
                         "${head}void doc_snippet_${id}_${index}() {\n"
                         "#line ${statements_line} \"${md}\"\n${statements}\n}\n")
      else()
        file(WRITE ${tu} "#line ${first_line} \"${md}\"\n${body}\n")
      endif()
      list(APPEND tus ${tu})
    endwhile()
  endforeach()
  set(SLUICE_DOC_SNIPPET_TUS ${tus} PARENT_SCOPE)
endfunction()
