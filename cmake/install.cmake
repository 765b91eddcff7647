# `cmake --install`: the programs, the public headers, the plugin SDK, the
# client library (shared and static, the wire code folded in, only sl_
# symbols exported from the shared one), the example plugins, the
# JavaScript host, the Python client, man pages, the systemd unit,
# pkg-config files and a CMake package (find_package(Sluice)). CPack makes
# a .deb from the same rules.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Where the installed daemon finds what it loads, relative to bindir (the
# daemon resolves it against its own executable's directory, so that any
# prefix works).
set(SLUICE_PKGLIBDIR ${CMAKE_INSTALL_LIBDIR}/sluice)
file(RELATIVE_PATH SLUICE_BIN_TO_PKGLIB
     /p/${CMAKE_INSTALL_BINDIR} /p/${SLUICE_PKGLIBDIR})
file(RELATIVE_PATH SLUICE_BIN_TO_ADMIN
     /p/${CMAKE_INSTALL_BINDIR} /p/${CMAKE_INSTALL_DATADIR}/sluice/admin)
target_compile_definitions(sl_runtime PRIVATE
  SL_PKGLIB_FROM_BIN="${SLUICE_BIN_TO_PKGLIB}"
  SL_ADMIN_FROM_BIN="${SLUICE_BIN_TO_ADMIN}")

# The client library for out-of-tree programs: one library with the wire
# code (proto/) in it; the internal static libraries stay for the build.
set(SLUICE_CLIENT_SOURCES client/client.c client/getall.c client/subscribe.c
    client/remote.c ${SL_PROTO_SOURCES})
# compiled once, linked twice
add_library(sluice_client_objs OBJECT ${SLUICE_CLIENT_SOURCES})
target_include_directories(sluice_client_objs PRIVATE include proto
                           ${MBEDCRYPTO_INCLUDE_DIR})
target_link_libraries(sluice_client_objs PRIVATE PkgConfig::MSGPACK
                      PkgConfig::JANSSON PkgConfig::UUID nng::nng)
add_library(sluice_client_shared SHARED $<TARGET_OBJECTS:sluice_client_objs>)
add_library(sluice_client_static STATIC $<TARGET_OBJECTS:sluice_client_objs>)
foreach(t sluice_client_shared sluice_client_static)
  # mbedtls: the TLS files are checked with it (proto/tlsconf.c)
  target_link_libraries(${t} PRIVATE PkgConfig::MSGPACK PkgConfig::JANSSON
                        PkgConfig::UUID nng::nng Threads::Threads
                        ${MBEDTLS_LIB} ${MBEDX509_LIB} ${MBEDCRYPTO_LIBRARY})
  set_target_properties(${t} PROPERTIES OUTPUT_NAME sluice-client)
endforeach()
set_target_properties(sluice_client_shared PROPERTIES
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
  LINK_DEPENDS ${PROJECT_SOURCE_DIR}/client/libsluice-client.map)
target_link_options(sluice_client_shared PRIVATE -Wl,--no-undefined
  -Wl,--version-script=${PROJECT_SOURCE_DIR}/client/libsluice-client.map)

# sluice-host beside sluiced: the daemon runs it from its own directory
# (isolation: process)
install(TARGETS sluiced sluice sluice-host
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/sluice DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS sluice_client_shared sluice_client_static sluice_plugin
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS account_details account_filters cart
  LIBRARY DESTINATION ${SLUICE_PKGLIBDIR}/plugins)
install(FILES plugins/account_details.c plugins/account_filters.c
  plugins/cart.c DESTINATION ${CMAKE_INSTALL_DATADIR}/sluice/examples)
if(TARGET js_host)
  # js_host.so finds libsluice_jsbudget.so beside it
  set_target_properties(js_host PROPERTIES INSTALL_RPATH "$ORIGIN")
  install(TARGETS js_host sluice_jsbudget
    LIBRARY DESTINATION ${SLUICE_PKGLIBDIR})
endif()
install(DIRECTORY admin/ DESTINATION ${CMAKE_INSTALL_DATADIR}/sluice/admin)
install(FILES client/python/sluice_remote.py
  DESTINATION lib/python3/dist-packages)
install(FILES docs/man/sluice.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES docs/man/sluiced.8 docs/man/sluice-host.8
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
# The unit and the configuration it starts with name the installed paths:
# made at install time, for the prefix given then (--prefix, or /usr for
# the .deb), each prefix in a directory of its own (installs may run side
# by side).
install(CODE "
  set(SLUICE_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  set(SLUICE_DATADIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}\")
  set(SLUICE_PLUGINDIR
      \"\${CMAKE_INSTALL_PREFIX}/${SLUICE_PKGLIBDIR}/plugins\")
  string(MD5 dir \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")
  set(dir ${CMAKE_BINARY_DIR}/packaging/\${dir})
  configure_file(${PROJECT_SOURCE_DIR}/packaging/sluiced.service.in
                 \${dir}/sluiced.service @ONLY)
  configure_file(${PROJECT_SOURCE_DIR}/packaging/resources.yaml.in
                 \${dir}/resources.yaml @ONLY)
  file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\"
       TYPE FILE FILES \${dir}/sluiced.service)
  file(INSTALL DESTINATION
       \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/sluice/examples\"
       TYPE FILE FILES \${dir}/resources.yaml)
  file(REMOVE_RECURSE \${dir})")

# pkg-config: sluice-plugin (the SDK a plugin links) and sluice-client.
# Relocatable: the prefix is found from the .pc file's own place.
set(SLUICE_PC_DEPS "msgpack jansson uuid")
file(RELATIVE_PATH SLUICE_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
string(REGEX REPLACE "/$" "" SLUICE_PC_TO_PREFIX "${SLUICE_PC_TO_PREFIX}")
configure_file(cmake/sluice-plugin.pc.in sluice-plugin.pc @ONLY)
configure_file(cmake/sluice-client.pc.in sluice-client.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/sluice-plugin.pc
  ${CMAKE_BINARY_DIR}/sluice-client.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The CMake package: Sluice::client, Sluice::client_static, Sluice::plugin
# and sluice_add_plugin().
set(SLUICE_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Sluice)
configure_package_config_file(cmake/SluiceConfig.cmake.in
  ${CMAKE_BINARY_DIR}/SluiceConfig.cmake
  INSTALL_DESTINATION ${SLUICE_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/SluiceConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/SluiceConfig.cmake
  ${CMAKE_BINARY_DIR}/SluiceConfigVersion.cmake
  DESTINATION ${SLUICE_CMAKEDIR})

# A .deb: `cpack -G DEB` in the build directory. Its dependencies are
# Debian's package names, read from the binaries by dpkg-shlibdeps.
set(CPACK_PACKAGE_NAME sluice)
set(CPACK_PACKAGE_VENDOR "Sluice")
set(CPACK_PACKAGE_CONTACT "Sluice developers <sluice@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "event store and projection runtime with compiled plugins")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3-msgpack")
include(CPack)
