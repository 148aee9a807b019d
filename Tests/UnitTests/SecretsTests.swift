import RootcausesStorage
import Testing

@Suite("Secrets")
struct SecretsTests {
    @Test func hexIsLowerCaseTwoDigitsPerByte() {
        #expect(Secrets.hex([UInt8]()) == "")
        #expect(Secrets.hex([0x00, 0x09, 0x0a, 0x0f, 0x10, 0x7f, 0xa5, 0xff]) == "00090a0f107fa5ff")
        #expect(Secrets.hex(0...255).count == 512)
    }

    @Test func contentDigestsAreTheSHA256OfTheUTF8Text() {
        // The FIPS 180-2 example and the empty text. Stored digests were made by PostgreSQL's
        // sha256 over the UTF-8 bytes: the integration tests compare with it, non-ASCII included.
        #expect(Storage.contentDigest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Storage.contentDigest("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func randomSecretsAreHexOfTheAskedLength() {
        let secret = Secrets.randomHex(bytes: 16)
        #expect(secret.count == 32)
        #expect(secret.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(Secrets.randomHex(bytes: 16) != secret)
    }
}
