# Man pages for the four commands, made from their --help with help2man, and a
# Debian package of everything `cmake --install` puts down (the commands, the
# systemd units, the sysusers.d file, the man pages):
#
#   cpack -G DEB --config BUILD/CPackConfig.cmake -B OUTDIR
#
# tests/integration/test_package.sh builds it, installs it with dpkg and runs
# the installed commands.

find_program(SPK_HELP2MAN help2man)
set(SPK_MAN_DIR ${CMAKE_BINARY_DIR}/man)
set(SPK_MAN_keysplit "make holder keys, split an RSA key into sealed shares, check and combine them")
set(SPK_MAN_share-holder "serve sealed key shares over ZeroMQ with CURVE to allow-listed clients")
set(SPK_MAN_combiner "rebuild a split RSA key from k shares for one operation, then wipe it")
set(SPK_MAN_edge "TLS edge that serves certificates whose private keys are split")
if(SPK_HELP2MAN)
  set(pages)
  foreach(cmd keysplit share-holder combiner edge)
    if(TARGET ${cmd})
      add_custom_command(
        OUTPUT ${SPK_MAN_DIR}/${cmd}.1.gz
        COMMAND ${CMAKE_COMMAND} -E make_directory ${SPK_MAN_DIR}
        COMMAND ${SPK_HELP2MAN} --no-info --no-discard-stderr
                --version-string=${PROJECT_VERSION} --name=${SPK_MAN_${cmd}}
                --output=${SPK_MAN_DIR}/${cmd}.1 $<TARGET_FILE:${cmd}>
        COMMAND gzip -9nf ${SPK_MAN_DIR}/${cmd}.1
        DEPENDS ${cmd}
        COMMENT "man page ${cmd}.1 from ${cmd} --help"
        VERBATIM)
      list(APPEND pages ${SPK_MAN_DIR}/${cmd}.1.gz)
    endif()
  endforeach()
  add_custom_target(man ALL DEPENDS ${pages})
  install(FILES ${pages} DESTINATION share/man/man1)
else()
  message(STATUS "help2man not found: no man pages (tools/lib/deps.sh installs it)")
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME splitkey)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "TLS edge serving RSA keys that are split with Shamir sharing")
set(CPACK_PACKAGE_DESCRIPTION
    "splitkey lets a TLS edge serve a domain without storing its RSA private key: the key is split k-of-n, share-holder daemons serve their shares over ZeroMQ with CURVE, and a combiner rebuilds the key in locked memory for one operation at a time. Commands: keysplit, share-holder, combiner, edge; systemd units and a sysusers.d file for their users.")
set(CPACK_PACKAGE_CONTACT "splitkey maintainers <splitkey@invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/debian/postinst)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
