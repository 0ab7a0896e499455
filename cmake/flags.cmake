include(CheckCCompilerFlag)

add_compile_definitions(_DEFAULT_SOURCE)

set(SPK_WARNINGS
  -Wall -Wextra -Wformat=2 -Wshadow -Wvla -Wwrite-strings -Wstrict-prototypes
  -Wold-style-definition -Wmissing-prototypes -Wimplicit-fallthrough -Wcast-qual
  -Wpointer-arith -Wnull-dereference -Wswitch-enum)
if(SPK_WERROR)
  list(APPEND SPK_WARNINGS -Werror)
endif()
add_compile_options(${SPK_WARNINGS})

add_compile_options(-fstack-protector-strong -fstack-clash-protection)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  add_compile_options(-fcf-protection=full)
endif()
foreach(flag -ftrivial-auto-var-init=zero -fzero-call-used-regs=used)
  string(MAKE_C_IDENTIFIER "HAVE${flag}" var)
  check_c_compiler_flag(${flag} ${var})
  if(${var})
    add_compile_options(${flag})
  endif()
endforeach()

set(SPK_SANITIZE "")
if(SPK_ASAN)
  list(APPEND SPK_SANITIZE address)
endif()
if(SPK_UBSAN)
  list(APPEND SPK_SANITIZE undefined)
endif()
if(SPK_SANITIZE)
  list(JOIN SPK_SANITIZE "," san)
  add_compile_options(-fsanitize=${san} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${san})
  if(SPK_UBSAN)
    add_compile_options(-fno-sanitize-recover=all)
  endif()
elseif(CMAKE_BUILD_TYPE MATCHES "Release|RelWithDebInfo")
  # FORTIFY needs optimisation and fights the sanitizers, so only here.
  add_compile_options(-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3)
endif()

# Under SPK_FUZZ every library is built with libFuzzer's coverage
# instrumentation (not its main), so the fuzzers are guided by the parsers'
# branches and not only by the target files.
if(SPK_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

add_link_options(-Wl,-z,relro,-z,now,-z,noexecstack -pie)

# Every library and executable links these; the helper keeps folder files short.
# spk_deps(target [header...]): the library's dependencies and its public
# headers (spk_public_header).
function(spk_deps target)
  # libssl only where TLS is spoken (the edge links it itself): the combiner
  # must not carry TLS code.
  target_link_libraries(${target} PUBLIC PkgConfig::DEPS OpenSSL::Crypto)
  spk_public_header(${target} ${ARGN})
endfunction()

# spk_public_header(target [header...]): the library's users see only its
# public header, <dir>/<dir>.h, and the further headers named; the library
# itself sees its own folder and the public headers of what it links (links
# in the build tree keep the "<dir>/name.h" spelling). So no other module can
# include its internal.h, and it can include no header of a module it does
# not link.
function(spk_public_header target)
  get_filename_component(dir ${CMAKE_CURRENT_SOURCE_DIR} NAME)
  set(pub ${CMAKE_BINARY_DIR}/public/${dir})
  file(MAKE_DIRECTORY ${pub}/${dir})
  foreach(header ${dir}.h ${ARGN})
    file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR}/${header} ${pub}/${dir}/${header} SYMBOLIC)
  endforeach()
  target_include_directories(${target} PUBLIC ${pub})
  set(own ${CMAKE_BINARY_DIR}/private/${dir})
  file(MAKE_DIRECTORY ${own})
  file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR} ${own}/${dir} SYMBOLIC)
  target_include_directories(${target} PRIVATE ${own})
endfunction()

# spk_sees_sources(target): a module's own programs and the white-box tests
# include internal headers from the whole source tree.
function(spk_sees_sources target)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR})
endfunction()
