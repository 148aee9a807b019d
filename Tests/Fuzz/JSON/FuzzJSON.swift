import FuzzSupport
import RootcausesJSON

/// Fuzzing target for the JSON parser: any bytes may be refused, none may crash it, and what it
/// accepts must serialize to text that parses back to the same text (the wire's answers are
/// serialized values).
///
/// Built with libFuzzer by `Tests/Fuzz/run` (`-sanitize=fuzzer,address -DFUZZ`); built plainly,
/// it replays the committed corpus (`swift run fuzz-json Tests/Fuzz/corpus/json`).
func fuzzJSON(_ bytes: UnsafeRawBufferPointer) {
    guard let value = try? JSONParser.parse(bytes) else { return }
    let text = value.serialized
    guard let again = try? JSONParser.parse(text) else {
        fatalError("the serialization of an accepted document does not parse: \(text)")
    }
    guard again.serialized == text else {
        fatalError("serializing twice differs: \(text) then \(again.serialized)")
    }
}

@main
struct FuzzTarget {
    static func main() { fuzzMain(fuzzJSON) }
}
