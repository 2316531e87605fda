using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace Loom.Text;

/// <summary>
/// The public API of one reference assembly, in documentation-id terms: the types a user can name (public, or
/// nested public/protected inside such a type) and the members they declare. A reference pack's XML file also
/// documents internal types compiled from shared sources (MessagePack formatters, generated regex classes); this
/// tells them apart from the API the pack exposes.
/// </summary>
internal sealed class PublicSurface
{
    /// <summary>The surface that contains every id: used when no reference assembly lies beside the XML file.</summary>
    public static readonly PublicSurface Everything = new(null, null, null);

    readonly HashSet<string>? types;
    readonly HashSet<string>? namespaces;
    readonly HashSet<string>? members;

    PublicSurface(HashSet<string>? types, HashSet<string>? namespaces, HashSet<string>? members)
    {
        this.types = types;
        this.namespaces = namespaces;
        this.members = members;
    }

    /// <summary>The surface of the assembly at this path; <see cref="Everything"/> when there is none (or it has no metadata).</summary>
    public static PublicSurface Of(string assemblyPath)
    {
        if (!File.Exists(assemblyPath))
        {
            return Everything;
        }
        using var stream = File.OpenRead(assemblyPath);
        using var portable = new PEReader(stream);
        if (!portable.HasMetadata)
        {
            return Everything;
        }
        var metadata = portable.GetMetadataReader();
        var types = new HashSet<string>(StringComparer.Ordinal);
        var namespaces = new HashSet<string>(StringComparer.Ordinal);
        var members = new HashSet<string>(StringComparer.Ordinal);
        foreach (var handle in metadata.TypeDefinitions)
        {
            if (VisibleName(metadata, handle) is not { } typeName)
            {
                continue;
            }
            var type = metadata.GetTypeDefinition(handle);
            types.Add(typeName);
            namespaces.Add(metadata.GetString(OutermostType(metadata, type).Namespace));
            foreach (var methodHandle in type.GetMethods())
            {
                var method = metadata.GetMethodDefinition(methodHandle);
                var name = metadata.GetString(method.Name);
                // Explicit interface implementations are private by name ("System.IDisposable.Dispose") but part of the API.
                if (IsVisible(method.Attributes & MethodAttributes.MemberAccessMask) || (name.Contains('.', StringComparison.Ordinal) && name[0] != '.'))
                {
                    members.Add(typeName + "." + name);
                }
            }
            foreach (var fieldHandle in type.GetFields())
            {
                var field = metadata.GetFieldDefinition(fieldHandle);
                if (IsVisible((MethodAttributes)(field.Attributes & FieldAttributes.FieldAccessMask)))
                {
                    members.Add(typeName + "." + metadata.GetString(field.Name));
                }
            }
            foreach (var propertyHandle in type.GetProperties())
            {
                members.Add(typeName + "." + metadata.GetString(metadata.GetPropertyDefinition(propertyHandle).Name));
            }
            foreach (var eventHandle in type.GetEvents())
            {
                members.Add(typeName + "." + metadata.GetString(metadata.GetEventDefinition(eventHandle).Name));
            }
        }
        return new PublicSurface(types, namespaces, members);
    }

    /// <summary>
    /// True when the documented member (<c>T:</c>, <c>M:</c>, <c>P:</c>, <c>F:</c>, <c>E:</c> or <c>N:</c> id) is part of the surface:
    /// its type is visible and declares a member of that name (any overload; explicit interface implementations by their type alone).
    /// </summary>
    public bool Contains(string id)
    {
        if (types is null || namespaces is null || members is null)
        {
            return true;
        }
        if (id.Length < 3 || id[1] != ':')
        {
            return false;
        }
        var name = id[2..];
        var end = name.IndexOfAny(['(', '~']);
        if (end >= 0)
        {
            name = name[..end];
        }
        switch (id[0])
        {
            case 'T':
                return types.Contains(name);
            case 'N':
                return namespaces.Contains(name);
        }
        var dot = name.LastIndexOf('.');
        if (dot <= 0)
        {
            return false;
        }
        var typeName = name[..dot];
        var memberName = name[(dot + 1)..];
        if (!types.Contains(typeName))
        {
            return false;
        }
        if (memberName.Contains('#', StringComparison.Ordinal) && memberName[0] != '#')
        {
            return true;
        }
        var generic = memberName.IndexOf("``", StringComparison.Ordinal);
        if (generic >= 0)
        {
            memberName = memberName[..generic];
        }
        return members.Contains(typeName + "." + memberName.Replace('#', '.'));
    }

    static bool IsVisible(MethodAttributes access) =>
        access is MethodAttributes.Public or MethodAttributes.Family or MethodAttributes.FamORAssem;

    // "Ns.Outer`1.Inner" for a type a user can name; null for internal types and types nested in them.
    static string? VisibleName(MetadataReader metadata, TypeDefinitionHandle handle)
    {
        var type = metadata.GetTypeDefinition(handle);
        var visibility = type.Attributes & TypeAttributes.VisibilityMask;
        var name = metadata.GetString(type.Name);
        if (visibility == TypeAttributes.Public)
        {
            var space = metadata.GetString(type.Namespace);
            return space.Length == 0 ? name : space + "." + name;
        }
        if (visibility is TypeAttributes.NestedPublic or TypeAttributes.NestedFamily or TypeAttributes.NestedFamORAssem)
        {
            return VisibleName(metadata, type.GetDeclaringType()) is { } outer ? outer + "." + name : null;
        }
        return null;
    }

    static TypeDefinition OutermostType(MetadataReader metadata, TypeDefinition type)
    {
        while (type.GetDeclaringType() is { IsNil: false } declaring)
        {
            type = metadata.GetTypeDefinition(declaring);
        }
        return type;
    }
}
