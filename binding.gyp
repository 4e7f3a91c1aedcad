{
  "targets": [
    {
      "target_name": "vaecf",
      "sources": [
        "<!@(node -p \"const s = require('./native/sources.json'); [...s.core, ...s.cpu, ...s.binding].join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native",
        "<!@(node scripts/gyp-flags.js includes)"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "<!@(node scripts/gyp-flags.js defines)"],
      "libraries": ["<!@(node scripts/gyp-flags.js libraries)"],
      "conditions": [
        ["OS=='linux'", {
          "cflags!": ["-fno-exceptions"],
          "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=c++17", "-std=gnu++20"],
          "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fexceptions", "-frtti"],
          "ldflags": ["-fopenmp", "-Wl,-rpath,'$$ORIGIN'"]
        }],
        ["OS=='linux' and target_arch=='x64'", { "cflags_cc": ["-march=x86-64-v2"] }],
        ["OS=='linux' and target_arch=='arm64'", { "cflags_cc": ["-march=armv8-a"] }],
        ["OS=='mac'", {
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "GCC_ENABLE_CPP_RTTI": "YES",
            "GCC_OPTIMIZATION_LEVEL": "3",
            "MACOSX_DEPLOYMENT_TARGET": "11.0"
          }
        }],
        ["OS=='win'", {
          "msvs_settings": {
            "VCCLCompilerTool": {
              "ExceptionHandling": 1,
              "RuntimeTypeInfo": "true",
              "AdditionalOptions": ["/std:c++17", "/O2", "/openmp:llvm"]
            }
          }
        }]
      ]
    }
  ]
}
