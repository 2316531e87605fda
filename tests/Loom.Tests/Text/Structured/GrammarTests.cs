using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Loom.Text;
using Loom.Text.Structured;

namespace Loom.Tests.Text.Structured;

public class GrammarTests
{
    static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    static bool Matches(Grammar grammar, string text) => grammar.Matches(Encoding.UTF8.GetBytes(text));

    [Theory]
    [InlineData("[a-c]{1,3}x?")]
    [InlineData("(ab|cd)+")]
    [InlineData("\\d{3}-\\d{2,4}")]
    [InlineData("[^a-y]{2}")]
    [InlineData("\\w+@\\w+\\.com")]
    [InlineData("^(?:yes|no|maybe)$")]
    [InlineData("a.c")]
    [InlineData("[\\s\\d]*z")]
    [InlineData("é+[\u4e00-\u4e05]?")]
    [InlineData("x{2,}y{0,1}")]
    public void RegexAgreesWithDotNetOnRandomStrings(string pattern)
    {
        var grammar = Grammar.FromRegex(pattern);
        var reference = new Regex($"\\A(?:{pattern.TrimStart('^').TrimEnd('$')})\\z");
        var random = new Random(pattern.Length);
        string alphabet = "abcdxyz019-@.com \té中一\n";
        for (int i = 0; i < 4000; i++)
        {
            int length = random.Next(8);
            var text = new string([.. Enumerable.Range(0, length).Select(_ => alphabet[random.Next(alphabet.Length)])]);
            bool expected = reference.IsMatch(text);
            Assert.True(expected == Matches(grammar, text), $"/{pattern}/ on '{text}': .NET says {expected}");
        }
        // Strings sampled from the grammar itself must match too (the random strings above rarely do for some patterns).
        foreach (var text in SampleFrom(grammar, new Random(7), 200))
            Assert.Matches(reference, text);
    }

    /// <summary>Random walks through the grammar's byte automaton until it accepts.</summary>
    static IEnumerable<string> SampleFrom(Grammar grammar, Random random, int count)
    {
        for (int i = 0; i < count; i++)
        {
            var state = grammar.Start;
            var bytes = new List<byte>();
            while (!(state.Accepting && (!state.CanContinue || random.Next(3) == 0)))
            {
                var options = Enumerable.Range(0, 256).Select(b => (Byte: (byte)b, Next: grammar.Step(state, (byte)b))).Where(o => o.Next is not null).ToList();
                var (b, next) = options[random.Next(options.Count)];
                bytes.Add(b);
                state = next!;
            }
            yield return Encoding.UTF8.GetString([.. bytes]);
        }
    }

    [Fact]
    public void SchemaLanguageIsTheCompactJsonOfTheSchema()
    {
        var grammar = Grammar.FromJsonSchema(Json("""
            {"type":"object","properties":{"name":{"type":"string","maxLength":3},"age":{"type":"integer","minimum":0,"maximum":120},
             "tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":2}},"required":["name"],"additionalProperties":false}
            """));
        Assert.True(Matches(grammar, """{"name":"Bo"}"""));
        Assert.True(Matches(grammar, """{"name":"Bob","age":120,"tags":["a","b"]}"""));
        Assert.True(Matches(grammar, """{"name":"\"\\","tags":[]}"""));
        Assert.False(Matches(grammar, """{"age":3}"""));              // name is required
        Assert.False(Matches(grammar, """{"name":"Bobby"}"""));       // maxLength
        Assert.False(Matches(grammar, """{"name":"B","age":121}""")); // maximum
        Assert.False(Matches(grammar, """{"name":"B","age":07}"""));  // leading zero
        Assert.False(Matches(grammar, """{"age":1,"name":"B"}"""));   // schema order
        Assert.False(Matches(grammar, """{"name": "B"}"""));          // no whitespace
        Assert.False(Matches(grammar, """{"name":"B","tags":["a","b","a"]}"""));
    }

    [Theory]
    [InlineData(-17, 5, false, false)]
    [InlineData(0, 0, false, false)]
    [InlineData(-3, 250, true, true)]
    [InlineData(95, 1234, false, true)]
    public void IntegerRangesAreExact(long min, long max, bool exclusiveMin, bool exclusiveMax)
    {
        string lower = exclusiveMin ? $"\"exclusiveMinimum\":{min}" : $"\"minimum\":{min}";
        string upper = exclusiveMax ? $"\"exclusiveMaximum\":{max}" : $"\"maximum\":{max}";
        var grammar = Grammar.FromJsonSchema(Json($"{{\"type\":\"integer\",{lower},{upper}}}"));
        for (long value = min - 30; value <= max + 30; value++)
        {
            bool inside = (exclusiveMin ? value > min : value >= min) && (exclusiveMax ? value < max : value <= max);
            Assert.True(inside == Matches(grammar, value.ToString(System.Globalization.CultureInfo.InvariantCulture)), $"{value} in [{min}, {max}]");
        }
        Assert.False(Matches(grammar, "-0"));
        Assert.False(Matches(grammar, "1.5"));
    }

    [Fact]
    public void NumberBoundsAreNeverCrossedByAFraction()
    {
        var grammar = Grammar.FromJsonSchema(Json("""{"type":"number","minimum":-2.5,"exclusiveMaximum":3}"""));
        foreach (var sample in SampleFrom(grammar, new Random(3), 400))
        {
            double value = double.Parse(sample, System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(value, -2.5, 2.9999999);
        }
        Assert.True(Matches(grammar, "-1.75"));
        Assert.True(Matches(grammar, "2.5"));
        Assert.False(Matches(grammar, "3"));
        Assert.False(Matches(grammar, "-3"));
    }

    [Fact]
    public void LongRepetitionsCountExactly()
    {
        // Bounds above a few copies compile to calls of one shared rule; the counts must stay exact.
        var grammar = Grammar.FromJsonSchema(Json("""
            {"type":"object","properties":{"s":{"type":"string","minLength":10,"maxLength":20},
             "a":{"type":"array","items":{"type":"integer","minimum":0,"maximum":9},"minItems":10,"maxItems":12}},"required":["s","a"]}
            """));
        string Digits(int n) => "[" + string.Join(",", Enumerable.Range(0, n).Select(i => i % 10)) + "]";
        for (int length = 0; length <= 25; length++)
            for (int items = 8; items <= 13; items++)
            {
                string text = $"{{\"s\":\"{new string('é', length)}\",\"a\":{Digits(items)}}}";
                Assert.True((length is >= 10 and <= 20 && items is >= 10 and <= 12) == Matches(grammar, text), text);
            }
    }

    [Fact]
    public void RecursiveReferencesAreBoundedByDepth()
    {
        var schema = Json("""
            {"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"next":{"$ref":"#/$defs/node"}},"required":["v"],"additionalProperties":false}},
             "$ref":"#/$defs/node"}
            """);
        // Depth 4: the root, then one frame per node.
        var grammar = Grammar.FromJsonSchema(schema, new GrammarOptions { MaxDepth = 4 });
        Assert.True(Matches(grammar, """{"v":1}"""));
        Assert.True(Matches(grammar, """{"v":1,"next":{"v":2,"next":{"v":3}}}"""));
        Assert.False(Matches(grammar, """{"v":1,"next":{"v":2,"next":{"v":3,"next":{"v":4}}}}"""));
        // At the depth limit a prefix that could only continue deeper is refused at once, so every accepted prefix can finish.
        var state = grammar.Start;
        foreach (byte b in """{"v":1,"next":{"v":2,"next":{"v":3"""u8.ToArray()) state = grammar.Step(state, b)!;
        Assert.Null(grammar.Step(state, (byte)','));
    }

    [Fact]
    public void JsonObjectModeAcceptsAnyObject()
    {
        var grammar = Grammar.FromJsonSchema(Json("""{"type":"object"}"""));
        Assert.True(Matches(grammar, """{}"""));
        Assert.True(Matches(grammar, """{"a":[1,-2.5,true,null,{"b":"c\n"}],"d":{}}"""));
        Assert.False(Matches(grammar, """[1]"""));
        Assert.False(Matches(grammar, """{"a":1,}"""));
    }

    [Theory]
    [InlineData("""{"type":"string","format":"date"}""", "format", "#")]
    [InlineData("""{"type":"object","properties":{"date":{"type":"string","format":"date"}}}""", "format", "#/properties/date")]
    [InlineData("""{"allOf":[{"type":"string"}]}""", "allOf", "#")]
    [InlineData("""{"not":{"type":"string"}}""", "not", "#")]
    [InlineData("""{"if":{"type":"string"},"then":{"minLength":1}}""", "if", "#")]
    [InlineData("""{"type":"integer","multipleOf":3}""", "multipleOf", "#")]
    [InlineData("""{"type":"array","uniqueItems":true}""", "uniqueItems", "#")]
    [InlineData("""{"type":"array","contains":{"type":"string"}}""", "contains", "#")]
    [InlineData("""{"type":"object","minProperties":1}""", "minProperties", "#")]
    [InlineData("""{"type":"object","maxProperties":1}""", "maxProperties", "#")]
    [InlineData("""{"type":"object","patternProperties":{"a":{}}}""", "patternProperties", "#")]
    [InlineData("""{"type":"object","propertyNames":{"maxLength":3}}""", "propertyNames", "#")]
    [InlineData("""{"type":"object","dependentRequired":{"a":["b"]}}""", "dependentRequired", "#")]
    [InlineData("""{"type":"object","unevaluatedProperties":false}""", "unevaluatedProperties", "#")]
    [InlineData("""{"type":"array","items":{"type":"string","nullable":true}}""", "nullable", "#/items")]
    [InlineData("""{"$defs":{"x":{"type":"string","contentEncoding":"base64"}},"type":"null"}""", "contentEncoding", "#/$defs/x")]
    [InlineData("""{"anyOf":[{"type":"null"},{"type":"string","$anchor":"a"}]}""", "$anchor", "#/anyOf/1")]
    [InlineData("""{"type":"array","prefixItems":[{"type":"integer","maxContains":1}]}""", "maxContains", "#/prefixItems/0")]
    public void KeywordsOutsideTheSubsetAreRefusedByNameAndPath(string schema, string keyword, string path)
    {
        var error = Assert.Throws<SchemaNotSupportedException>(() => Grammar.FromJsonSchema(Json(schema)));
        Assert.Equal($"unsupported JSON Schema keyword '{keyword}' at {path}", error.Message);
        Assert.IsAssignableFrom<ArgumentException>(error);
    }

    [Theory]
    [InlineData("""{"type":"object","additionalProperties":{"type":"string"}}""", "'additionalProperties' at #")]
    [InlineData("""{"type":"string","pattern":"(?=a)b"}""", "#/pattern")]
    [InlineData("""{"type":"string","pattern":"a","maxLength":3}""", "'pattern' together with 'maxLength' at #")]
    [InlineData("""{"type":"integer","minimum":5,"maximum":4}""", "no integer satisfies the bounds at #")]
    [InlineData("""{"$ref":"#/$defs/missing"}""", "'#/$defs/missing', which does not exist")]
    [InlineData("""{"type":"array","items":[{"type":"string"}]}""", "'items' at # must be a schema")]
    [InlineData("""{"type":"objekt"}""", "unknown type 'objekt' at #/type")]
    [InlineData("""{"$defs":{"loop":{"type":"object","properties":{"x":{"$ref":"#/$defs/loop"}},"required":["x"]}},"$ref":"#/$defs/loop"}""", "no complete value")]
    public void SchemasLoomCannotHonourAreRefusedWithAReason(string schema, string expected)
    {
        var error = Assert.Throws<SchemaNotSupportedException>(() => Grammar.FromJsonSchema(Json(schema)));
        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("""{"oneOf":[{"type":"string"},{"type":"string","maxLength":3}]}""", 0, 1)]
    [InlineData("""{"oneOf":[{"type":"integer"},{"type":"number","maximum":5}]}""", 0, 1)]
    [InlineData("""{"oneOf":[{"type":"null"},{"enum":["a","b"]},{"enum":["b","c"]}]}""", 1, 2)]
    [InlineData("""{"oneOf":[{"type":"object","properties":{"a":{"type":"string"}}},{"type":"object","properties":{"b":{"type":"string"}}}]}""", 0, 1)]
    [InlineData("""{"oneOf":[{"type":"string"},{}]}""", 0, 1)]
    public void OneOfWhoseBranchesCanOverlapIsRefused(string schema, int first, int second)
    {
        // Generated as a choice, such a oneOf could yield a value that matches two branches, which fails the schema.
        var error = Assert.Throws<SchemaNotSupportedException>(() => Grammar.FromJsonSchema(Json(schema)));
        Assert.Contains($"'oneOf' at #: branches {first} and {second} may both match one value", error.Message);
    }

    [Theory]
    [InlineData("""{"oneOf":[{"type":"integer"},{"type":"string"},{"type":"null"}]}""", """ "x" """, """ 1.5 """)]
    [InlineData("""{"oneOf":[{"const":"a"},{"enum":["b","c"]},{"type":"integer"}]}""", """ "c" """, """ "d" """)]
    [InlineData("""{"oneOf":[{"type":"object","properties":{"kind":{"const":"dog"},"bark":{"type":"boolean"}},"required":["kind"]},{"type":"object","properties":{"kind":{"const":"cat"}},"required":["kind"]}]}""", """ {"kind":"cat"} """, """ {"kind":"cow"} """)]
    [InlineData("""{"$defs":{"p":{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"],"additionalProperties":false}},"oneOf":[{"$ref":"#/$defs/p"},{"type":"object","properties":{"y":{"type":"integer"}},"required":["y"],"additionalProperties":false}]}""", """ {"y":2} """, """ {"x":1,"y":2} """)]
    public void OneOfWithDisjointBranchesIsGenerated(string schema, string valid, string invalid)
    {
        var grammar = Grammar.FromJsonSchema(Json(schema));
        Assert.True(Matches(grammar, valid.Trim()));
        Assert.False(Matches(grammar, invalid.Trim()));
    }

    [Fact]
    public void MasksAllowExactlyTheTokensWhoseBytesTheGrammarAccepts()
    {
        var tokenizer = BpeTrainer.Train(["""{"name":"Ada","age":36} {"name":"Bob","age":7} the quick brown fox"""], 300);
        var grammar = TokenGrammar.ForJsonSchema(Json("""{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"""), tokenizer);
        Assert.Same(grammar, TokenGrammar.ForJsonSchema(Json("""{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"""), tokenizer));
        var reference = Grammar.FromJsonSchema(Json("""{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"""));
        var matcher = grammar.Start();
        var random = new Random(5);
        var prefix = new List<byte>();
        for (int step = 0; step < 40 && !matcher.IsFinished; step++)
        {
            var logits = new float[tokenizer.VocabSize];
            Assert.True(matcher.ApplyMask(logits));
            var allowed = new List<int>();
            for (int id = 0; id < tokenizer.VocabSize; id++)
            {
                bool expected = tokenizer.IsSpecial(id)
                    ? id == tokenizer.EosId && reference.Matches([.. prefix])
                    : PrefixOk(reference, [.. prefix, .. tokenizer.TokenBytes(id)]);
                Assert.True(expected == !float.IsNegativeInfinity(logits[id]), $"token {id} '{tokenizer.IdToToken(id)}' after '{Encoding.UTF8.GetString([.. prefix])}'");
                if (expected && !tokenizer.IsSpecial(id)) allowed.Add(id);
            }
            if (allowed.Count == 0) break;
            int token = allowed[random.Next(allowed.Count)];
            matcher.Accept(token);
            prefix.AddRange(tokenizer.TokenBytes(token));
        }
    }

    static bool PrefixOk(Grammar grammar, byte[] bytes)
    {
        var state = grammar.Start;
        foreach (byte b in bytes)
        {
            var next = grammar.Step(state, b);
            if (next is null) return false;
            state = next;
        }
        return true;
    }
}
