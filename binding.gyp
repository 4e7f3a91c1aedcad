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
        "/usr/include/x86_64-linux-gnu",
        "/usr/include/aarch64-linux-gnu"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "<!@(node scripts/gyp-flags.js defines)"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=c++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fexceptions", "-frtti"],
      "ldflags": ["-fopenmp", "-Wl,-rpath,'$$ORIGIN'"],
      "libraries": ["<!@(node scripts/gyp-flags.js libraries)", "<!@(node scripts/gyp-flags.js onednn-libraries)"],
      "conditions": [
        ["target_arch=='x64'", { "cflags_cc": ["-march=x86-64-v2"] }],
        ["target_arch=='arm64'", { "cflags_cc": ["-march=armv8-a"] }]
      ]
    }
  ]
}
