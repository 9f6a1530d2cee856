{
  "targets": [
    {
      "target_name": "skafe_interpret",
      "sources": ["src/interpret.cc", "src/project.cc", "src/check-lines.cc"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
