// swift-tools-version:5.7
// Swift/iOS light client for conode: uniffi-generated sources (checked in, kept current by
// tests/run-kotlin.sh) over libconode. Link against libconode (e.g. `swift test -Xlinker -L<dir>`);
// for iOS, build libconode as a static library for the device targets and add it to the app.
import PackageDescription

let package = Package(
    name: "Conode",
    products: [.library(name: "Conode", targets: ["Conode"])],
    targets: [
        .systemLibrary(name: "conodeFFI", path: "Sources/conodeFFI"),
        .target(
            name: "Conode",
            dependencies: ["conodeFFI"],
            path: "Sources/Conode",
            linkerSettings: [.linkedLibrary("conode")]
        ),
        .testTarget(name: "ConodeTests", dependencies: ["Conode"], path: "Tests/ConodeTests"),
    ]
)
